"""Worker side: generate an arm's assistance for all its items ahead of participants.

Prompts go to the model in batches through the backend's `generate_batch` (one batched call
beats several single ones on a CPU; DESIGN.md's traps). Each text is cached per (item, model
config, prompt version, kind), so a second job, or another arm with the same config and prompt,
generates only what is missing.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annotations.models import Item
from experiments.models import (
    Arm,
    ArmItem,
    Assistance,
    AssistanceJob,
    AssistanceText,
    JobStatus,
)
from experiments.prompting import prompt_text, suggestion_parse
from llm.backends.base import GenerationError
from llm.generation import backend_for, chat_messages

BATCH = 8


def _missing(arm: Arm) -> list[ArmItem]:
    cached = AssistanceText.objects.filter(
        model_config=arm.model_config_id, prompt_version=arm.prompt_version, kind=arm.assistance
    ).values_list("source_id", flat=True)
    return list(
        ArmItem.objects.filter(arm=arm)
        .exclude(source_id__in=cached)
        .select_related("source")
        .order_by("source_id")
    )


def _source(row: ArmItem) -> Item:
    # An assisted arm is a rating-queue arm: each of its items copies a question-set item.
    assert row.source is not None
    return row.source


def _claim(job_id: int) -> bool:
    return bool(
        AssistanceJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING
        )
    )


def assistance_job_run(*, job_id: int, batch: int = BATCH) -> None:
    """Run one job: claimed with a conditional UPDATE (a second delivery finds nothing),
    then each batch of missing items generated and stored, the progress counted as it goes.
    A generation error fails the job with its message; what was stored stays cached."""
    if not _claim(job_id):
        return
    job = AssistanceJob.objects.select_related("arm__model_config", "arm__queue").get(pk=job_id)
    arm = job.arm
    config = arm.model_config
    assert config is not None, "an assisted arm has a model config (a check constraint)"
    kind = arm.queue.item_kind
    todo = _missing(arm)
    done = job.items_total - len(todo)
    AssistanceJob.objects.filter(pk=job.pk).update(items_done=done)
    try:
        backend = backend_for(config)
        params = config.generation_params()
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            chats = [
                chat_messages(config, prompt_text(arm.prompt, kind, _source(row).payload))
                for row in chunk
            ]
            completions = backend.generate_batch(chats, params=params)
            rows = []
            for row, completion in zip(chunk, completions, strict=True):
                value, confidence = (
                    suggestion_parse(kind, completion.text)
                    if arm.assistance == Assistance.SUGGESTION
                    else (None, None)
                )
                rows.append(
                    AssistanceText(
                        source=_source(row),
                        model_config=config,
                        prompt_version=arm.prompt_version,
                        kind=arm.assistance,
                        text=completion.text.replace("\x00", ""),
                        suggested_value=value,
                        confidence=confidence,
                    )
                )
            with transaction.atomic():
                AssistanceText.objects.bulk_create(rows, ignore_conflicts=True)
                done += len(rows)
                AssistanceJob.objects.filter(pk=job.pk).update(items_done=done)
    except GenerationError as error:
        AssistanceJob.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED, error=error.message, finished_at=timezone.now()
        )
        return
    AssistanceJob.objects.filter(pk=job.pk).update(
        status=JobStatus.DONE, items_done=done, finished_at=timezone.now()
    )
