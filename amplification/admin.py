from django.contrib import admin

from amplification.models import MemoEntry, Node, NodeVersion, Tree
from core.admin import ServiceCreatedAdmin, ServiceCreatedInline, ServiceWrittenAdmin


class NodeInline(ServiceCreatedInline):
    model = Node
    fields = ("depth", "position", "question", "resolution", "status", "completion_tokens")
    readonly_fields = fields
    show_change_link = True


# A tree is created with its root and its expansion task (amplification.services.tree_create).
@admin.register(Tree)
class TreeAdmin(ServiceCreatedAdmin):
    list_display = ["id", "question", "mode", "status", "max_depth", "max_nodes", "created_at"]
    list_filter = ["status", "mode", "is_demo"]
    search_fields = ["question"]
    filter_horizontal = ["assignees"]
    inlines = [NodeInline]


class NodeVersionInline(ServiceCreatedInline):
    model = NodeVersion
    readonly_fields = ["number", "question", "answer", "resolution", "reason", "author", "person"]


@admin.register(Node)
class NodeAdmin(ServiceCreatedAdmin):
    list_display = ["id", "tree", "depth", "question", "resolution", "status", "answered_by"]
    list_filter = ["status", "resolution", "answered_by"]
    search_fields = ["question", "answer", "composed_answer"]
    raw_id_fields = ["tree", "parent", "memo_origin", "person", "taken_by"]
    inlines = [NodeVersionInline]


@admin.register(MemoEntry)
class MemoEntryAdmin(ServiceWrittenAdmin):
    list_display = ["id", "question", "config", "hits", "updated_at"]
    search_fields = ["question"]
    raw_id_fields = ["node", "tree"]


@admin.register(NodeVersion)
class NodeVersionAdmin(ServiceWrittenAdmin):
    list_display = ["id", "node", "number", "reason", "author", "created_at"]
    raw_id_fields = ["node", "person"]
