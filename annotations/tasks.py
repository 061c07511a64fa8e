from celery import shared_task

from annotations.services import export_run


@shared_task(acks_late=True, reject_on_worker_lost=True)
def export_run_task(job_id: int) -> None:
    export_run(job_id=job_id)
