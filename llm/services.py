"""Every write of the llm app made by a person: save a config, start and retry a "Try it"
trial. The worker streams the trial (llm/trial_worker.py); these services send the tasks
(imports run services → tasks → worker, never back)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from llm.models import ModelConfig, ModelTrial, TrialStatus
from llm.tasks import model_trial_run_task


def model_config_save(*, config: ModelConfig, user: User | None) -> ModelConfig:
    """Save a config that a ModelConfigForm has validated (new or edited)."""
    if config.pk is None and user is not None:
        config.created_by = user
    config.save()
    return config


def model_trial_start(*, config: ModelConfig, user: User, prompt: str) -> ModelTrial:
    """Queue a "Try it" completion; the generation task is sent after the row commits."""
    with transaction.atomic():
        trial = ModelTrial.objects.create(config=config, user=user, prompt=prompt)
        transaction.on_commit(lambda: model_trial_run_task.delay(trial.pk))
    return trial


def model_trial_retry(*, trial_id: int) -> ModelTrial:
    """Run a failed trial again from nothing (or send a queued one's task again: a lost
    message). ValidationError for a trial that is running or done."""
    with transaction.atomic():
        retried = ModelTrial.objects.filter(
            pk=trial_id, status__in=(TrialStatus.FAILED, TrialStatus.QUEUED)
        ).update(
            status=TrialStatus.QUEUED, text="", error="", finished_at=None, started_at=None,
            generating_at=None, finish_reason="", completion_tokens=None,
        )  # fmt: skip
        if not retried:
            raise ValidationError("Only a failed or queued trial can be retried.")
        transaction.on_commit(lambda: model_trial_run_task.delay(trial_id))
    return ModelTrial.objects.get(pk=trial_id)
