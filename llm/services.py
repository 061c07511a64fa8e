"""Every write of the llm app."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
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


def _trial_text_save(trial_id: int, text: str) -> None:
    ModelTrial.objects.filter(pk=trial_id).update(text=text)


def model_trial_run(*, trial_id: int) -> None:
    """Stream one trial. Claimed with a conditional UPDATE, so a second delivery of the task
    finds nothing to claim and returns; text is saved as it grows (see core.streams)."""
    from llm.generation import backend_for, chat_messages, stream_published

    claimed = ModelTrial.objects.filter(pk=trial_id, status=TrialStatus.QUEUED).update(
        status=TrialStatus.RUNNING
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
