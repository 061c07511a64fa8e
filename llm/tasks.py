"""Celery tasks: each takes ids and runs the worker's side (llm/trial_worker.py).
The services that send them import this module; nothing here imports the services."""

from celery import shared_task

from llm.trial_worker import model_trial_run, model_trials_fail_stale


# No acks_late: a redelivered task would find its trial claimed and do nothing. A worker lost
# mid-trial is caught by model_trials_fail_stale_task instead.
@shared_task
def model_trial_run_task(trial_id: int) -> None:
    model_trial_run(trial_id=trial_id)


@shared_task
def model_trials_fail_stale_task() -> int:
    """Every minute (CELERY_BEAT_SCHEDULE): trials whose worker is gone are failed."""
    return model_trials_fail_stale()
