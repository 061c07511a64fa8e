"""Celery tasks: each takes ids and calls the worker's side. The services send them by name
(rewards.services), so nothing imports this module back; training is imported inside the
tasks that train, since it loads torch and the web process never does."""

from __future__ import annotations

from celery import shared_task

from rewards.auto_judge import debate_scores_fill
from rewards.services import reward_models_check, reward_scores_due, reward_versions_reap


@shared_task(acks_late=True, reject_on_worker_lost=True)
def reward_training_task(version_id: int) -> None:
    """A version row is the job: a redelivery after a lost worker finds nothing to claim."""
    from rewards.training import reward_training_run

    reward_training_run(version_id=version_id)


@shared_task
def reward_scores_refresh_task(reward_model_id: int, only_missing: bool = False) -> None:
    from rewards.training import reward_scores_refresh

    reward_scores_refresh(reward_model_id=reward_model_id, only_missing=only_missing)


@shared_task
def reward_models_check_task() -> None:
    """Every few seconds (CELERY_BEAT_SCHEDULE, on the default queue, not behind a training):
    reap runs whose worker died, start the runs that are due, score new open items."""
    reward_versions_reap()
    reward_models_check()
    # Items added since the active version went live get its scores too.
    for reward_model_id in reward_scores_due():
        reward_scores_refresh_task.delay(reward_model_id, only_missing=True)


@shared_task
def debate_scores_fill_task() -> None:
    """Every minute (CELERY_BEAT_SCHEDULE) and after each promotion or roll back: the
    automatic judge scores debates that have no score from its version (a bounded batch)."""
    debate_scores_fill()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def best_of_n_task(experiment_id: int) -> None:
    """The experiment row is the job: a redelivery finds nothing to claim. On `generation`
    (CELERY_TASK_ROUTES): it is mostly sampling from the policy."""
    from rewards.best_of_n import best_of_n_run

    best_of_n_run(experiment_id=experiment_id)
