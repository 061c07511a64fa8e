from django.contrib import admin

from amplification.models import (
    Iteration,
    IterationLine,
    IterationPair,
    MemoEntry,
    Node,
    NodeVersion,
    Tree,
)
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


# Iterations (amplification.iterations): a line is created from its form, each iteration and
# blind pair by the step that needs it; a pair's sides live only here, never in its item.
@admin.register(IterationLine)
class IterationLineAdmin(ServiceCreatedAdmin):
    list_display = ["id", "name", "base", "max_depth", "created_by", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["base", "held_out", "created_by"]


@admin.register(Iteration)
class IterationAdmin(ServiceWrittenAdmin):
    list_display = ["id", "line", "number", "helper", "training_run", "reward_model",
                    "judge_status", "created_at"]  # fmt: skip
    list_filter = ["line", "judge_status"]
    search_fields = ["line__name"]


@admin.register(IterationPair)
class IterationPairAdmin(ServiceWrittenAdmin):
    list_display = ["id", "iteration", "comparison", "a_role", "item", "judge_version",
                    "judge_p_first"]  # fmt: skip
    list_filter = ["comparison"]
    search_fields = ["question"]
    # The reward-model judge's reading is the worker's (amplification.iteration_judge).
    raw_id_fields = ["item", "judge_version"]
