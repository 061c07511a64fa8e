from django.contrib import admin

from annotations.models import (
    ApiToken,
    Assignment,
    ExportJob,
    Item,
    Label,
    Queue,
    QueueMember,
)
from core.admin import ServiceCreatedAdmin, ServiceWrittenAdmin


class QueueMemberInline(admin.TabularInline):
    model = QueueMember
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "labels_per_item", "priority", "gold_rate", "item_count"]
    list_filter = ["kind", "priority"]
    search_fields = ["name"]
    readonly_fields = ["item_count", "created_by", "created_at"]
    inlines = [QueueMemberInline]


@admin.register(QueueMember)
class QueueMemberAdmin(admin.ModelAdmin):
    list_display = ["queue", "user", "added_at"]
    list_filter = ["queue"]


# Items come from imports and the item kinds (annotations.services.queue_items_create).
@admin.register(Item)
class ItemAdmin(ServiceCreatedAdmin):
    list_display = [
        "id",
        "queue",
        "external_id",
        "is_gold",
        "label_count",
        "complete",
        "uncertainty",
    ]
    list_filter = ["queue", "is_gold", "complete"]
    search_fields = ["external_id"]
    # Counters belong to the label services; editing them by hand would break the k rule.
    readonly_fields = ["label_count", "complete", "created_at"]


@admin.register(Assignment)
class AssignmentAdmin(ServiceWrittenAdmin):
    list_display = [
        "id", "queue", "item", "annotator", "outcome", "ahead", "created_at", "expires_at",
    ]  # fmt: skip
    list_filter = ["outcome", "ahead", "queue"]


@admin.register(Label)
class LabelAdmin(ServiceWrittenAdmin):
    list_display = ["id", "queue", "item", "annotator", "value", "time_spent_ms", "created_at"]
    list_filter = ["queue", "is_gold"]


@admin.register(ExportJob)
class ExportJobAdmin(ServiceWrittenAdmin):
    list_display = ["id", "created_by", "status", "rows_done", "rows_total", "created_at"]
    list_filter = ["status"]


# A token exists only as the digest its service made (the secret is shown once, on its page).
@admin.register(ApiToken)
class ApiTokenAdmin(ServiceCreatedAdmin):
    list_display = ["name", "user", "created_at", "last_used_at"]
    readonly_fields = ["digest", "created_at", "last_used_at"]
