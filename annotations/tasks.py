from celery import shared_task

from annotations.services import export_run, exports_expire


@shared_task(acks_late=True, reject_on_worker_lost=True)
def export_run_task(job_id: int) -> None:
    export_run(job_id=job_id)


@shared_task
def exports_expire_task() -> int:
    """Daily (CELERY_BEAT_SCHEDULE): delete export files past EXPORT_RETENTION_DAYS."""
    return exports_expire()
