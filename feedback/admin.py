from django.contrib import admin

from feedback.models import (
    AILabel,
    Constitution,
    ConstitutionVersion,
    LabellingRun,
    ModelAnnotator,
    Principle,
)


class PrincipleInline(admin.TabularInline):
    model = Principle
    extra = 0


@admin.register(Constitution)
class ConstitutionAdmin(admin.ModelAdmin):
    list_display = ("name", "created_by", "created_at")
    search_fields = ("name",)


@admin.register(ConstitutionVersion)
class ConstitutionVersionAdmin(admin.ModelAdmin):
    list_display = ("constitution", "number", "created_at")
    inlines = [PrincipleInline]


@admin.register(ModelAnnotator)
class ModelAnnotatorAdmin(admin.ModelAdmin):
    list_display = ("name", "queue", "model_config", "constitution", "shortcut_threshold")
    list_select_related = ("queue", "model_config", "constitution")


@admin.register(LabellingRun)
class LabellingRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "annotator", "version", "status", "items_done", "items_total")
    list_filter = ("status",)
    readonly_fields = ("model_snapshot", "prompt_template", "method", "error")


@admin.register(AILabel)
class AILabelAdmin(admin.ModelAdmin):
    """Read only: a label's provenance is what it is."""

    list_display = ("pk", "run", "item", "principle", "value", "probability", "orders_disagree")
    list_select_related = ("run", "principle")
    raw_id_fields = ("run", "item", "principle")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
