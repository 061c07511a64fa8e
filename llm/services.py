"""Every write of the llm app."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.streams import TextStreamPublisher, stream_send
from llm.backends.base import GenerationError
from llm.models import ModelConfig, ModelTrial, TrialStatus


def trial_group_name(trial_id: int) -> str:
    return f"llm-trial-{trial_id}"


def model_config_save(*, config: ModelConfig, user: User | None) -> ModelConfig:
    """Save a config that a ModelConfigForm has validated (new or edited)."""
    if config.pk is None and user is not None:
        config.created_by = user
    config.save()
    return config


def model_trial_start(*, config: ModelConfig, user: User, prompt: str) -> ModelTrial:
    """Queue a "Try it" completion; the generation task is sent after the row commits."""
    from llm.tasks import model_trial_run_task

    with transaction.atomic():
        trial = ModelTrial.objects.create(config=config, user=user, prompt=prompt)
        transaction.on_commit(lambda: model_trial_run_task.delay(trial.pk))
    return trial


# A RUNNING trial whose worker has been silent this long has lost it: model_trials_fail_stale
# fails it (a "Try it" is interactive: the researcher retries it, nothing runs it again unasked).
# Loading a model takes ~35 s before the first token; saves then come several times a second.
TRIAL_STALE_AFTER = timedelta(minutes=2)


def _trial_text_save(trial_id: int, text: str) -> None:
    ModelTrial.objects.filter(pk=trial_id).update(text=text, heartbeat_at=timezone.now())


def model_trials_fail_stale(*, now: datetime | None = None) -> int:
    """Fail every RUNNING trial whose worker has been silent for TRIAL_STALE_AFTER; returns
    how many. One conditional UPDATE: two sweeps at once fail each trial once. Run by beat
    every minute (CELERY_BEAT_SCHEDULE)."""
    now = now or timezone.now()
    cutoff = now - TRIAL_STALE_AFTER
    return ModelTrial.objects.filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff),
        status=TrialStatus.RUNNING,
    ).update(
        status=TrialStatus.FAILED,
        error="Its worker stopped mid-generation (killed, or its machine gone); retry it.",
        finished_at=now,
    )


def model_trial_retry(*, trial_id: int) -> ModelTrial:
    """Run a failed trial again from nothing (or send a queued one's task again: a lost
    message). ValidationError for a trial that is running or done."""
    from llm.tasks import model_trial_run_task

    with transaction.atomic():
        retried = ModelTrial.objects.filter(
            pk=trial_id, status__in=(TrialStatus.FAILED, TrialStatus.QUEUED)
        ).update(status=TrialStatus.QUEUED, text="", error="", finished_at=None)
        if not retried:
            raise ValidationError("Only a failed or queued trial can be retried.")
        transaction.on_commit(lambda: model_trial_run_task.delay(trial_id))
    return ModelTrial.objects.get(pk=trial_id)


def model_trial_run(*, trial_id: int) -> None:
    """Stream one trial. Claimed with a conditional UPDATE, so a second delivery of the task
    finds nothing to claim and returns; text is saved as it grows (see core.streams)."""
    from llm.generation import backend_for, chat_messages, stream_published

    claimed = ModelTrial.objects.filter(pk=trial_id, status=TrialStatus.QUEUED).update(
        status=TrialStatus.RUNNING, heartbeat_at=timezone.now()
    )
    if not claimed:
        return
    trial = ModelTrial.objects.select_related("config").get(pk=trial_id)
    group = trial_group_name(trial.pk)
    publisher = TextStreamPublisher(
        group=group,
        stream=str(trial.pk),
        save=lambda text: _trial_text_save(trial_id, text),
    )
    fields: dict[str, Any]
    try:
        backend = backend_for(trial.config)
        messages = chat_messages(trial.config, trial.prompt)
        chunks = backend.stream_chat(messages, params=trial.config.generation_params())
        usage = stream_published(chunks, publisher)
        fields = {"status": TrialStatus.DONE, "text": publisher.text}
        fields |= ModelTrial.usage_fields(usage)
    except GenerationError as error:
        publisher.flush()
        fields = {"status": TrialStatus.FAILED, "text": publisher.text, "error": str(error)}
    ModelTrial.objects.filter(pk=trial_id).update(finished_at=timezone.now(), **fields)
    stream_send(group, {"type": "stream.end", "stream": str(trial.pk)})
