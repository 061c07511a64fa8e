"""Export jobs: the worker's side, run by annotations/tasks.py. Run a job (claim, write the
file with a heartbeat), put back in the queue the jobs whose worker is gone, delete files past
their retention. People's writes (start, retry) are in annotations/services/exports.py, which
sends the tasks: imports run services → tasks → this module, never back, so nothing here
sends a task."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from annotations.exports import (
    EXTENSIONS,
    PROGRESS_EVERY,
    ExportInvalid,
    ExportSpec,
    export_plan,
    export_size,
    export_write,
)
from annotations.models import ExportJob, JobStatus
from core.models import WebhookEvent
from core.webhooks import webhook_emit


def export_path(job: ExportJob) -> Path:
    return Path(settings.MEDIA_ROOT) / "exports" / job.file_name


# A RUNNING export whose worker has been silent this long has lost it (killed, machine gone):
# exports_requeue_stale starts it again, up to EXPORT_ATTEMPTS runs, then fails it.
EXPORT_STALE_AFTER = timedelta(minutes=2)
EXPORT_HEARTBEAT_EVERY = timedelta(seconds=20)
EXPORT_ATTEMPTS = 3


def export_run(*, job_id: int) -> None:
    """Run one export job. Claimed with a conditional UPDATE, so a second delivery of the task
    finds nothing to claim and returns. The file appears under its final name only when whole.

    The worker beats (heartbeat_at) with its progress and at least every
    EXPORT_HEARTBEAT_EVERY; every write is fenced by the claim's attempt number, so a worker
    given up on by exports_requeue_stale changes nothing more (its file is deleted)."""
    claimed = ExportJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, attempt=F("attempt") + 1, heartbeat_at=timezone.now()
    )
    if not claimed:
        return
    job = ExportJob.objects.get(pk=job_id)
    mine = ExportJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, attempt=job.attempt)
    path: Path | None = None
    try:
        spec = ExportSpec.model_validate(job.spec)
        plan = export_plan(spec)
        mine.update(rows_total=export_size(plan))
        job.file_name = f"{job.pk}-{secrets.token_hex(8)}.{EXTENSIONS[spec.format]}"
        path = export_path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        done = 0
        beat = timezone.now()

        def progress(labels: int) -> None:
            nonlocal done, beat
            before, done = done, done + labels
            now = timezone.now()
            if done // PROGRESS_EVERY != before // PROGRESS_EVERY or now - beat > (
                EXPORT_HEARTBEAT_EVERY
            ):
                mine.update(rows_done=done, heartbeat_at=now)
                beat = now

        with partial.open("wb") as out:
            export_write(plan, out, on_labels=progress)
        partial.replace(path)
    except ExportInvalid as error:
        mine.update(status=JobStatus.FAILED, error=error.message, finished_at=timezone.now())
        return
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        mine.update(status=JobStatus.FAILED, error=message, finished_at=timezone.now())
        raise
    finished = mine.update(
        status=JobStatus.DONE, rows_done=done, file_name=job.file_name, finished_at=timezone.now()
    )
    if not finished:  # given up on while it ran: another attempt owns the job now
        path.unlink(missing_ok=True)
        return
    webhook_emit(
        event=WebhookEvent.EXPORT_FINISHED,
        payload={"export_id": job.pk, "rows": done, "format": str(spec.format)},
    )


@dataclass(frozen=True)
class StaleExports:
    """What one sweep of exports_requeue_stale did."""

    requeued: tuple[int, ...]  # back to QUEUED, committed: the caller sends their tasks
    failed: int  # silent on their last attempt: FAILED


def exports_requeue_stale(*, now: datetime | None = None) -> StaleExports:
    """Put back in the queue every RUNNING export whose worker has been silent for
    EXPORT_STALE_AFTER, or fail it after EXPORT_ATTEMPTS runs. Each job is moved by a
    conditional UPDATE on its attempt number, so two sweeps at once move it once. Run by beat
    every minute (CELERY_BEAT_SCHEDULE); its task sends the requeued jobs."""
    now = now or timezone.now()
    cutoff = now - EXPORT_STALE_AFTER
    stale = ExportJob.objects.filter(status=JobStatus.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    )
    requeued: list[int] = []
    failed = 0
    for pk, attempt in list(stale.values_list("pk", "attempt")):
        this = stale.filter(pk=pk, attempt=attempt)
        if attempt >= EXPORT_ATTEMPTS:
            error = (
                f"Its worker stopped {attempt} times (killed, or its machine gone);"
                " retry it from the operations page, or start the export again."
            )
            failed += this.update(status=JobStatus.FAILED, error=error, finished_at=now)
        elif this.update(status=JobStatus.QUEUED, rows_done=0):
            requeued.append(pk)
    return StaleExports(requeued=tuple(requeued), failed=failed)


def exports_expire(*, now: datetime | None = None) -> int:
    """Delete the files of exports finished more than EXPORT_RETENTION_DAYS ago; return how
    many jobs expired. Run it outside a transaction: each job is claimed with a conditional
    UPDATE that commits before its file is deleted, so a file goes only once its job says it
    has expired, and two runs at once never both count a job. Running it again does nothing.
    Leftover `.part` files of exports that died that long ago go too."""
    now = now or timezone.now()
    days = settings.EXPORT_RETENTION_DAYS
    cutoff = now - timedelta(days=days)
    note = (
        f"Expired: the file was deleted {days} days after the export finished."
        " Start the export again for a new one."
    )
    expired = 0
    old = ExportJob.objects.filter(status=JobStatus.DONE, finished_at__lt=cutoff).exclude(
        file_name=""
    )
    for job in list(old.only("pk", "file_name")):  # not iterator(): we write to the table
        path = export_path(job)
        if ExportJob.objects.filter(pk=job.pk, file_name=job.file_name).update(
            file_name="", error=note
        ):
            path.unlink(missing_ok=True)
            expired += 1
    exports_dir = Path(settings.MEDIA_ROOT) / "exports"
    if exports_dir.is_dir():
        for partial in exports_dir.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):  # a running export just renamed it
                if partial.stat().st_mtime < cutoff.timestamp():
                    partial.unlink()
    return expired
