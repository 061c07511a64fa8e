"""Reads used by more than one view (pages and API)."""

from __future__ import annotations

from django.db.models import QuerySet

from feedback.models import Constitution, LabellingRun, ModelAnnotator


def constitutions() -> QuerySet[Constitution]:
    return Constitution.objects.prefetch_related("versions__principles")


def model_annotators() -> QuerySet[ModelAnnotator]:
    return ModelAnnotator.objects.select_related("queue", "model_config", "constitution")


def runs_of(annotator: ModelAnnotator) -> QuerySet[LabellingRun]:
    return annotator.runs.select_related("version__constitution").order_by("-created_at")
