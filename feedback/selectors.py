"""Reads used by more than one view (pages and API)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import QuerySet

from feedback.models import AILabel, Constitution, LabellingRun, ModelAnnotator, RunStatus


def constitutions() -> QuerySet[Constitution]:
    return Constitution.objects.prefetch_related("versions__principles")


def model_annotators() -> QuerySet[ModelAnnotator]:
    return ModelAnnotator.objects.select_related("queue", "model_config", "constitution")


def runs_of(annotator: ModelAnnotator) -> QuerySet[LabellingRun]:
    return annotator.runs.select_related("version__constitution").order_by("-created_at")


def newest_runs(queue_ids: Sequence[int]) -> list[LabellingRun]:
    """Each model annotator's newest finished run on these queues: the run whose labels
    the dashboard, exports, reward models and the shortcut read."""
    runs = (
        LabellingRun.objects.filter(annotator__queue_id__in=list(queue_ids), status=RunStatus.DONE)
        .select_related("annotator__queue", "annotator__model_config", "version__constitution")
        .order_by("annotator_id", "-finished_at", "-pk")
    )
    newest: dict[int, LabellingRun] = {}
    for run in runs:
        newest.setdefault(run.annotator_id, run)
    return list(newest.values())


LABELS_SHOWN = 30


def run_labels_sample(run: LabellingRun) -> list[AILabel]:
    """The run's first labels, with what the model was asked and answered (its provenance)."""
    return list(
        AILabel.objects.filter(run=run)
        .select_related("principle")
        .order_by("item_id", "pk")[:LABELS_SHOWN]
    )
