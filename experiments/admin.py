from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from core.admin import ServiceCreatedInline, ServiceWrittenAdmin
from experiments.models import (
    Arm,
    ArmItem,
    AssistanceFlag,
    AssistanceJob,
    AssistanceText,
    Experiment,
    Participant,
    Response,
)


class ArmInline(ServiceCreatedInline):
    model = Arm
    fields = ("position", "name", "assistance", "protocol", "model_config", "time_limit_s")
    readonly_fields = fields


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Experiments are made with their arms by the service (the API); here the texts, the
    link and the completion code may be corrected. The design (seed, question set) is fixed."""

    list_display = ["name", "slug", "question_set", "link_open", "frozen_at", "created_at"]
    # Study sites' return URLs are https.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = [
        "seed", "question_set", "question_bank", "frozen_at", "labels_per_item", "created_by",
    ]  # fmt: skip
    inlines = [ArmInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> list[str]:
        fixed = list(self.readonly_fields)
        if obj is not None and obj.frozen:
            # Once people joined, the link and the lateness rule they were under stay put.
            fixed += ["slug", "late_grace_s"]
        return fixed


@admin.register(Arm)
class ArmAdmin(ServiceWrittenAdmin):
    """Arms change through experiments.services (refused once frozen), never here."""

    list_display = ["experiment", "position", "name", "assistance", "protocol", "time_limit_s"]


@admin.register(ArmItem)
class ArmItemAdmin(ServiceWrittenAdmin):
    list_display = ["arm", "item", "source", "bank_question"]


@admin.register(Participant)
class ParticipantAdmin(ServiceWrittenAdmin):
    list_display = ["external_id", "experiment", "arm", "sequence", "joined_at", "completed_at"]
    search_fields = ["external_id"]


@admin.register(Response)
class ResponseAdmin(ServiceWrittenAdmin):
    list_display = ["participant", "arm_item", "correct", "late", "timed_out", "answered_at"]


@admin.register(AssistanceText)
class AssistanceTextAdmin(ServiceWrittenAdmin):
    list_display = ["source", "kind", "model_config", "prompt_version", "created_at"]


@admin.register(AssistanceFlag)
class AssistanceFlagAdmin(ServiceWrittenAdmin):
    list_display = ["participant", "assistance", "flag", "created_at"]


@admin.register(AssistanceJob)
class AssistanceJobAdmin(ServiceWrittenAdmin):
    list_display = ["arm", "status", "items_done", "items_total", "created_at"]
