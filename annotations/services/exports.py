"""Export jobs as people make them: start, retry, and the finished file. The worker runs them,
sweeps them and expires their files (annotations/export_worker.py); these services send the
tasks (imports run services → tasks → worker, never back)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from annotations.export_worker import export_path
from annotations.exports import CONTENT_TYPES, EXTENSIONS, ExportSpec, export_plan
from annotations.models import ExportJob, JobStatus
from annotations.services.errors import AnnotationError
from annotations.tasks import export_run_task


def export_start(*, user: User, spec: ExportSpec) -> ExportJob:
    """Check the spec (ExportInvalid on a problem), store a QUEUED job, run it after commit."""
    export_plan(spec)
    with transaction.atomic():
        job = ExportJob.objects.create(created_by=user, spec=spec.model_dump(mode="json"))
        transaction.on_commit(lambda: export_run_task.delay(job.pk))
    return job


def export_retry(*, job_id: int) -> ExportJob:
    """Run a failed export again (or send a queued one's task again: a lost message); the
    attempts start over. ValidationError for a job that is running or done."""
    with transaction.atomic():
        retried = ExportJob.objects.filter(
            pk=job_id, status__in=(JobStatus.FAILED, JobStatus.QUEUED)
        ).update(status=JobStatus.QUEUED, error="", rows_done=0, attempt=0, finished_at=None)
        if not retried:
            raise ValidationError("Only a failed or queued export can be retried.")
        transaction.on_commit(lambda: export_run_task.delay(job_id))
    return ExportJob.objects.get(pk=job_id)


@dataclass(frozen=True)
class ExportFile:
    path: Path
    file_name: str  # what the download is called
    content_type: str


class ExportNotReady(AnnotationError):
    """The export exists but has no file to send yet (queued, running) or will have none
    (failed): a state of the export, not a missing one."""

    status = 409


class ExportGone(AnnotationError):
    status = 410


def export_file(job: ExportJob) -> ExportFile:
    """The finished export's file, as the page and the API both send it; ExportNotReady while
    there is none (yet), ExportGone once exports_expire deleted it."""
    if export_expired(job):
        raise ExportGone(job.error or "This export's file has expired; start a new export.")
    path = export_path(job)
    if job.status != JobStatus.DONE or not path.is_file():
        if job.status == JobStatus.FAILED:
            state = f"it failed ({job.error}); start a new export"
        elif job.status == JobStatus.DONE:
            state = "its file is missing; start a new export"
        else:
            state = f"it is {job.status}; poll it until its status is done"
        raise ExportNotReady(f"export not ready: {state}")
    spec = ExportSpec.model_validate(job.spec)
    extension = EXTENSIONS[spec.format]
    return ExportFile(
        path=path,
        file_name=f"arbiter-labels-{job.pk}-{spec.format}.{extension}",
        content_type=CONTENT_TYPES[extension],
    )


def export_expired(job: ExportJob) -> bool:
    """A finished export whose file exports_expire deleted: DONE, with no file name left."""
    return job.status == JobStatus.DONE and not job.file_name
