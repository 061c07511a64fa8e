"""The assistance jobs on the operations page (core/jobs.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.urls import reverse

from core.jobs import Job, JobSource, job_rows_open, job_source_register


def _open_jobs(since: datetime) -> Iterable[Job]:
    from experiments.models import AssistanceJob

    for job in job_rows_open(AssistanceJob.objects.select_related("arm__experiment"), since):
        yield Job(
            source="assistance",
            pk=job.pk,
            title=f"assistance for {job.arm} ({job.items_done}/{job.items_total})",
            status=job.status,
            created_at=job.created_at,
            error=job.error,
            url=reverse("experiments:detail", args=[job.arm.experiment_id]),
        )


def _retry(pk: int) -> None:
    from experiments.services import assistance_job_retry

    assistance_job_retry(pk)


def register() -> None:
    job_source_register(
        JobSource(
            name="assistance", title="assistance generations", open_jobs=_open_jobs, retry=_retry
        )  # fmt: skip
    )
