""" "Try it" trials: the worker's side, run by llm/tasks.py. Stream one trial to its page, and
fail the trials whose worker is gone. People's writes (start, retry) are in llm/services.py,
which sends the tasks: imports run services → tasks → this module, never back, so nothing
here sends a task."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from core.streams import TextStreamPublisher, stream_send
from llm.backends.base import GenerationError
from llm.generation import backend_for, chat_messages, stream_published
from llm.models import ModelTrial, TrialStatus


def trial_group_name(trial_id: int) -> str:
    """The channel group a trial's text is published to, and its page's socket listens on."""
    return f"llm-trial-{trial_id}"


# A RUNNING trial whose worker has been silent this long has lost it: model_trials_fail_stale
# fails it (a "Try it" is interactive: the researcher retries it, nothing runs it again unasked).
# Loading a model takes ~35 s before the first token; saves then come several times a second.
TRIAL_STALE_AFTER = timedelta(minutes=2)


def _trial_text_save(trial_id: int, text: str, tokens: int) -> None:
    ModelTrial.objects.filter(pk=trial_id).update(
        text=text, completion_tokens=tokens, heartbeat_at=timezone.now()
    )


def _trial_changed(trial_id: int) -> None:
    """The trial's phase moved on: its page re-renders the status line from the row."""
    stream_send(trial_group_name(trial_id), {"type": "trial.changed"})


def model_trial_run(*, trial_id: int) -> None:
    """Stream one trial. Claimed with a conditional UPDATE, so a second delivery of the task
    finds nothing to claim and returns; text is saved as it grows (see core.streams)."""
    now = timezone.now()
    claimed = ModelTrial.objects.filter(pk=trial_id, status=TrialStatus.QUEUED).update(
        status=TrialStatus.RUNNING, heartbeat_at=now, started_at=now
    )
    if not claimed:
        return
    _trial_changed(trial_id)  # loading the model
    trial = ModelTrial.objects.select_related("config").get(pk=trial_id)
    group = trial_group_name(trial.pk)
    fields: dict[str, Any]
    text = ""
    try:
        backend = backend_for(trial.config)
        ModelTrial.objects.filter(pk=trial_id).update(generating_at=timezone.now())
        _trial_changed(trial_id)
        publisher = TextStreamPublisher(
            group=group,
            stream=str(trial.pk),
            save=lambda text, tokens: _trial_text_save(trial_id, text, tokens),
        )
        messages = chat_messages(trial.config, trial.prompt)
        chunks = backend.stream_chat(messages, params=trial.config.generation_params())
        try:
            last = stream_published(chunks, publisher)
        finally:
            text = publisher.text
        fields = {"status": TrialStatus.DONE, "text": text}
        if last is not None:
            fields |= ModelTrial.usage_fields(last.usage)
            fields["finish_reason"] = last.finish_reason or ""
    except GenerationError as error:
        fields = {"status": TrialStatus.FAILED, "text": text, "error": str(error)}
    ModelTrial.objects.filter(pk=trial_id).update(finished_at=timezone.now(), **fields)
    stream_send(group, {"type": "stream.end", "stream": str(trial.pk)})


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
