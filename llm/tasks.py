from celery import shared_task

from llm.services import model_trial_run


@shared_task(acks_late=True, reject_on_worker_lost=True)
def model_trial_run_task(trial_id: int) -> None:
    model_trial_run(trial_id=trial_id)
