from celery import shared_task

from experiments.assistance import assistance_job_run
from experiments.protocols import arm_transcripts_run


@shared_task(acks_late=True, reject_on_worker_lost=True)
def assistance_generate_task(job_id: int) -> None:
    assistance_job_run(job_id=job_id)


# The batch's claim (queued → running) makes a second delivery, or a batch another worker
# holds, a no-op; collecting the transcripts locks the arm and happens once.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def arm_transcripts_task(arm_id: int) -> None:
    arm_transcripts_run(arm_id=arm_id)
