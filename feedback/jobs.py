"""Labelling runs on the operations page's job list (core/jobs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.core.exceptions import ValidationError
from django.urls import reverse

from core.jobs import Job, JobSource, job_rows_open, job_source_register
from feedback.models import LabellingRun, RunStatus
from feedback.services import FeedbackError, labelling_run_start


def _open_runs(since: datetime) -> Iterator[Job]:
    runs = LabellingRun.objects.select_related("annotator__queue", "created_by")
    for run in job_rows_open(runs, since):
        yield Job(
            source="ai-labelling",
            pk=run.pk,
            title=f"{run.annotator.name} on {run.annotator.queue.name} (run {run.pk})",
            status=run.status,
            created_at=run.created_at,
            error=run.error,
            url=reverse("feedback:run_detail", kwargs={"pk": run.pk}),
            owner=run.created_by.username if run.created_by else "",
            retryable=run.status == RunStatus.FAILED,
        )


def _retry(pk: int) -> None:
    """A failed run starts again as a new run of the same annotator."""
    run = LabellingRun.objects.select_related("annotator").filter(pk=pk).first()
    if run is None or run.status != RunStatus.FAILED:
        raise ValidationError("Only a failed labelling run can be retried.")
    try:
        labelling_run_start(annotator=run.annotator, user=run.created_by)
    except FeedbackError as error:
        raise ValidationError(error.message) from error


def register() -> None:
    job_source_register(
        JobSource(
            name="ai-labelling", title="AI labelling runs", open_jobs=_open_runs, retry=_retry
        )
    )
