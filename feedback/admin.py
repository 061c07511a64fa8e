from django.contrib import admin

from core.admin import ServiceCreatedAdmin, ServiceCreatedInline, ServiceWrittenAdmin
from feedback.models import (
    AILabel,
    Constitution,
    ConstitutionVersion,
    LabellingRun,
    ModelAnnotator,
    Principle,
)


class PrincipleInline(ServiceCreatedInline):
    model = Principle
    readonly_fields = ("position", "text")


@admin.register(Constitution)
class ConstitutionAdmin(ServiceCreatedAdmin):
    list_display = ("name", "created_by", "created_at")
    search_fields = ("name",)


@admin.register(ConstitutionVersion)
class ConstitutionVersionAdmin(ServiceWrittenAdmin):
    """A version is what labels were written under: never edited, a new one is added."""

    list_display = ("constitution", "number", "created_at")
    inlines = [PrincipleInline]


@admin.register(ModelAnnotator)
class ModelAnnotatorAdmin(ServiceCreatedAdmin):
    """The prompt is checked against the queue's kind by model_annotator_save: edited on the
    annotator's page, not here."""

    readonly_fields = ("queue", "prompt")
    list_display = ("name", "queue", "model_config", "constitution", "shortcut_threshold",
                    "counts_toward_k")  # fmt: skip
    list_select_related = ("queue", "model_config", "constitution")
    search_fields = ("name",)


@admin.register(LabellingRun)
class LabellingRunAdmin(ServiceWrittenAdmin):
    list_display = ("pk", "annotator", "version", "status", "items_done", "items_total")
    list_filter = ("status",)


@admin.register(AILabel)
class AILabelAdmin(ServiceWrittenAdmin):
    list_display = ("pk", "run", "item", "principle", "value", "probability", "orders_disagree")
    list_select_related = ("run", "principle")


@admin.register(Principle)
class PrincipleAdmin(ServiceWrittenAdmin):
    list_display = ("version", "position", "text")
    list_select_related = ("version__constitution",)
    search_fields = ("text",)
