"""Celery tasks: each takes ids and runs the worker's side (llm/trial_worker.py,
llm/training.py). The services send them by registered name and do not import this module;
torch is imported only inside the training task."""

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


# As reward training: the run row is the job, so a redelivery after a lost worker finds
# nothing to claim; the lost run is failed by training_runs_fail_stale_task.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def training_run_task(run_id: int) -> None:
    from llm.training import training_run_execute

    training_run_execute(run_id=run_id)


@shared_task
def training_runs_fail_stale_task() -> list[int]:
    """Every minute (CELERY_BEAT_SCHEDULE, on `default`): runs whose worker is gone fail."""
    from llm.services import training_runs_fail_stale

    return training_runs_fail_stale()
