"""Celery tasks: each takes ids and runs the worker's side (annotations/export_worker.py).
The services that send them import this module; nothing here imports the services."""

from celery import shared_task

from annotations.export_worker import export_run, exports_expire, exports_requeue_stale


# No acks_late: a redelivered task would find its job claimed and do nothing. A worker lost
# mid-export is caught by exports_requeue_stale_task instead, which starts the job again.
@shared_task
def export_run_task(job_id: int) -> None:
    export_run(job_id=job_id)


@shared_task
def exports_requeue_stale_task() -> int:
    """Every minute (CELERY_BEAT_SCHEDULE): exports whose worker is gone start again, or fail
    after their last attempt; returns how many it moved."""
    swept = exports_requeue_stale()
    for job_id in swept.requeued:
        export_run_task.delay(job_id)
    return len(swept.requeued) + swept.failed


@shared_task
def exports_expire_task() -> int:
    """Daily (CELERY_BEAT_SCHEDULE): delete export files past EXPORT_RETENTION_DAYS."""
    return exports_expire()
