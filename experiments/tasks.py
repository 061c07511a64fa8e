from celery import shared_task

from experiments.assistance import assistance_job_run


@shared_task(acks_late=True, reject_on_worker_lost=True)
def assistance_generate_task(job_id: int) -> None:
    assistance_job_run(job_id=job_id)
