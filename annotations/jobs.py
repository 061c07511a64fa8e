"""Export jobs on the operations page's job list (core/jobs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.urls import reverse

from annotations.models import ExportJob, JobStatus
from annotations.services import export_retry
from core.jobs import Job, JobSource, job_rows_open, job_source_register


def _open_exports(since: datetime) -> Iterator[Job]:
    for job in job_rows_open(ExportJob.objects.select_related("created_by"), since):
        fmt = job.spec.get("format", "?") if isinstance(job.spec, dict) else "?"
        yield Job(
            source="exports",
            pk=job.pk,
            title=f"Export {job.pk} ({fmt}, {job.percent}%)",
            status=job.status,
            created_at=job.created_at,
            error=job.error,
            url=reverse("annotations:export_detail", kwargs={"pk": job.pk}),
            owner=job.created_by.username,
            retryable=job.status in (JobStatus.FAILED, JobStatus.QUEUED),
        )


def register() -> None:
    job_source_register(
        JobSource(
            name="exports",
            title="exports",
            open_jobs=_open_exports,
            retry=lambda pk: export_retry(job_id=pk),
        )
    )
