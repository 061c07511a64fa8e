"""Export jobs on the operations page's job list (core/jobs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db.models import Q
from django.urls import reverse

from annotations.models import ExportJob, JobStatus
from annotations.services import export_retry
from core.jobs import Job, JobSource, job_source_register


def _open_exports(since: datetime) -> Iterator[Job]:
    jobs = ExportJob.objects.filter(
        Q(status__in=(JobStatus.QUEUED, JobStatus.RUNNING))
        | Q(status=JobStatus.FAILED, finished_at__gte=since)
    ).select_related("created_by")
    for job in jobs.order_by("-created_at")[:100]:
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
