"""Every write of the llm app: save a config, start and retry a "Try it" trial, start, retry
and record training runs. The worker streams the trial (llm/trial_worker.py) and trains
(llm/training.py, which calls the training-run services here to record what it did); these
services send the tasks by their registered names (imports run tasks → worker → services,
never back).

Locking of a training run: the row is the job. The worker claims it (QUEUED → RUNNING,
conditional UPDATE); every later write of the run is conditional on it still being RUNNING,
so a run failed as lost (its lease expired) can change nothing, and its config is created in
the transaction that marks it DONE, under the row's lock."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from celery import Task, current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from llm.backends.base import GenerationError
from llm.backends.bundled import BUNDLED_MODEL_ID, bundled_gguf_path, resolve_model_path
from llm.models import (
    Backend,
    ModelConfig,
    ModelTrial,
    TrainingKind,
    TrainingRun,
    TrainingStatus,
    TrialStatus,
)
from llm.rewarders import run_rewarder
from llm.schemas import (
    DPOHyperparameters,
    PreferenceRow,
    PromptRow,
    RejectionSamplingHyperparameters,
    SFTHyperparameters,
    TrainingRow,
)

# The tasks these services send, by their registered names: llm.tasks runs these services (and
# llm.training, which uses them), so this module does not import it back (llm.apps registers
# the tasks in every process).
MODEL_TRIAL_TASK = "llm.tasks.model_trial_run_task"
TRAINING_RUN_TASK = "llm.tasks.training_run_task"


def _task(name: str) -> Task:
    return current_app.tasks[name]


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
        transaction.on_commit(lambda: _task(MODEL_TRIAL_TASK).delay(trial.pk))
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
        transaction.on_commit(lambda: _task(MODEL_TRIAL_TASK).delay(trial_id))
    return ModelTrial.objects.get(pk=trial_id)


# --- training runs --------------------------------------------------------------------------
TRAINED_MARKER = "arbiter-training.json"


# A run's rows: SFT rows, DPO's preference pairs, or rejection sampling's prompts.
Row = TypeVar("Row", TrainingRow, PreferenceRow, PromptRow)


@dataclass(frozen=True)
class RowSplit(Generic[Row]):
    train: list[Row]
    eval: list[Row]


def _prompt_key(prompt: str) -> str:
    return " ".join(prompt.casefold().split())


def training_rows_split(rows: Sequence[Row], *, eval_percent: int, seed: int) -> RowSplit[Row]:
    """Hold out about `eval_percent` % of the distinct prompts (at least one) for evaluation,
    chosen by a seeded hash of the prompt: every row of a prompt lands on one side, so no
    question is both trained on and evaluated on, and the split is the same in the web
    process (counts, checks) and in the worker."""
    keys = sorted({_prompt_key(row.prompt) for row in rows},
                  key=lambda k: hashlib.sha256(f"{seed}\x1f{k}".encode()).hexdigest())  # fmt: skip
    held = (
        set(keys[: max(1, math.ceil(len(keys) * eval_percent / 100))]) if len(keys) > 1 else set()
    )
    return RowSplit(
        train=[row for row in rows if _prompt_key(row.prompt) not in held],
        eval=[row for row in rows if _prompt_key(row.prompt) in held],
    )


def training_rows_hash(rows: Sequence[TrainingRow | PreferenceRow | PromptRow]) -> str:
    """SHA-256 of the rows as canonical JSON lines, in order: the dataset's identity."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row.model_dump(), sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _local_base_check(parent: ModelConfig) -> None:
    if parent.backend != Backend.TRANSFORMERS:
        raise ValidationError(
            f"{parent.name} is served by an OpenAI-compatible server; training needs a local "
            "transformers model (a checkpoint directory, a cached model id or the bundled model)."
        )
    try:
        if parent.model == BUNDLED_MODEL_ID:
            bundled_gguf_path()  # converted by the worker on first use
        else:
            resolve_model_path(parent.model, models_dir=settings.LLM_MODELS_DIR,
                               config_name=parent.name)  # fmt: skip
    except GenerationError as error:
        raise ValidationError(
            f"{parent.name}'s model is not available here: {error.message}"
        ) from None


def training_run_start(
    *,
    kind: str,
    parent: ModelConfig,
    name: str,
    rows: Sequence[TrainingRow],
    hyperparameters: SFTHyperparameters,
    source: str = "",
    eval_rows: Sequence[TrainingRow] | None = None,
    user: User | None = None,
) -> TrainingRun:
    """Queue an SFT run of `parent` on `rows`; the worker task is sent after the row
    commits. `eval_rows` (optional) is a held-out set given by the caller; without it a share
    of the prompts is held out (training_rows_split). ValidationError, and nothing created,
    for: a kind that is not SFT (policy runs start through dpo_run_start and
    rejection_sampling_run_start), a base that is not a local transformers model, fewer rows
    than LLM_TRAINING_MIN_ROWS, an eval set that shares a question with the training rows
    or is empty, or a name already taken by a config or an unfinished run."""
    if kind != TrainingKind.SFT_DISTIL:
        raise ValidationError(f"Training runs of kind {kind!r} start through their own service.")
    return _run_create(kind=kind, parent=parent, name=name, rows=rows, what="row",
                       hyperparameters=hyperparameters, source=source, eval_rows=eval_rows,
                       user=user)  # fmt: skip


def dpo_run_start(
    *,
    parent: ModelConfig,
    name: str,
    pairs: Sequence[PreferenceRow],
    hyperparameters: DPOHyperparameters,
    source: str = "",
    user: User | None = None,
) -> TrainingRun:
    """Queue a DPO run of `parent` (also its frozen reference) on preference pairs; a share
    of the prompts is held out for the eval loss and the report. ValidationError, and
    nothing created, as training_run_start: a base that is not local, fewer pairs than
    LLM_TRAINING_MIN_ROWS, fewer than two distinct prompts, a name taken."""
    return _run_create(kind=TrainingKind.DPO, parent=parent, name=name, rows=pairs,
                       what="preference pair", hyperparameters=hyperparameters, source=source,
                       user=user)  # fmt: skip


def rejection_sampling_run_start(
    *,
    parent: ModelConfig,
    name: str,
    prompts: Sequence[str],
    hyperparameters: RejectionSamplingHyperparameters,
    source: str = "",
    user: User | None = None,
) -> TrainingRun:
    """Queue a rejection-sampling run: on the worker, `n` completions a prompt from `parent`,
    the best under reward-model version `hyperparameters.reward_version` kept, then SFT on
    them. Prompts are de-duplicated (first kept). ValidationError, and nothing created, as
    training_run_start (fewer distinct prompts than LLM_TRAINING_MIN_ROWS), or when no
    reward scorer is registered. The caller checks that the version exists and may score."""
    if run_rewarder() is None:
        raise ValidationError("No reward scorer is available to rank the samples.")
    seen: dict[str, None] = {}
    for prompt in prompts:
        if prompt.strip():
            seen.setdefault(prompt.strip(), None)
    rows = [PromptRow(prompt=prompt) for prompt in seen]
    return _run_create(kind=TrainingKind.REJECTION_SAMPLING, parent=parent, name=name,
                       rows=rows, what="prompt", hyperparameters=hyperparameters,
                       source=source, user=user)  # fmt: skip


def _plural(count: int, what: str) -> str:
    return f"{count} {what}{'s' if count != 1 else ''}"


def _run_create(
    *,
    kind: str,
    parent: ModelConfig,
    name: str,
    rows: Sequence[Row],
    what: str,
    hyperparameters: SFTHyperparameters,
    source: str,
    user: User | None,
    eval_rows: Sequence[Row] | None = None,
) -> TrainingRun:
    """The checks and the row every kind of run shares; the task is sent on commit."""
    name = name.strip()
    if not name:
        raise ValidationError("Name the new model config.")
    _local_base_check(parent)
    minimum = settings.LLM_TRAINING_MIN_ROWS
    if len(rows) < minimum:
        raise ValidationError(
            f"The set has {_plural(len(rows), what)}; a training run needs at least "
            f"{minimum} (LLM_TRAINING_MIN_ROWS)."
        )
    split: RowSplit[Row]
    if eval_rows is None:
        split = training_rows_split(rows, eval_percent=hyperparameters.eval_percent,
                                    seed=hyperparameters.seed)  # fmt: skip
    else:
        overlap = {_prompt_key(r.prompt) for r in rows} & {_prompt_key(r.prompt) for r in eval_rows}
        if overlap:
            raise ValidationError(
                f"The eval set shares {_plural(len(overlap), 'question')} with the training "
                "rows; held-out questions must be new to the model."
            )
        split = RowSplit(train=list(rows), eval=list(eval_rows))
    all_rows = [*split.train, *split.eval]
    if not split.eval:
        raise ValidationError("No held-out rows: the set needs at least two distinct questions.")
    with transaction.atomic():
        if (
            ModelConfig.objects.filter(name=name).exists()
            or TrainingRun.objects.filter(
                name=name, status__in=(TrainingStatus.QUEUED, TrainingStatus.RUNNING)
            ).exists()
        ):
            raise ValidationError(
                f"A model config or a running training run is already called {name}."
            )
        run = TrainingRun.objects.create(
            kind=kind, name=name, parent=parent, source=source[:300],
            rows=[row.model_dump() for row in all_rows], row_count=len(all_rows),
            dataset_hash=training_rows_hash(all_rows), train_rows=len(split.train),
            eval_rows=len(split.eval), hyperparameters=hyperparameters.model_dump(mode="json"),
            created_by=user,
        )  # fmt: skip
        transaction.on_commit(lambda: _task(TRAINING_RUN_TASK).delay(run.pk))
    return run


def training_run_retry(*, run_id: int) -> TrainingRun:
    """Run a failed training run again from the start on the same rows (attempt + 1), or
    send a queued one's task again (a lost message). ValidationError otherwise."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status not in (TrainingStatus.FAILED, TrainingStatus.QUEUED):
            raise ValidationError("Only a failed or queued training run can be retried.")
        if run.status == TrainingStatus.FAILED:
            if ModelConfig.objects.filter(name=run.name).exists():
                raise ValidationError(f"A model config is already called {run.name}.")
            TrainingRun.objects.filter(pk=run_id).update(
                status=TrainingStatus.QUEUED, reason="", progress_step=0, progress_total=0,
                curves={}, eval_loss_before=None, eval_loss_after=None, machine={}, report={},
                started_at=None, finished_at=None, wall_time_s=None, lease_expires_at=None,
                attempt=run.attempt + 1,
            )  # fmt: skip
        transaction.on_commit(lambda: _task(TRAINING_RUN_TASK).delay(run_id))
    return TrainingRun.objects.get(pk=run_id)


def training_run_checkpoints_remove(run_id: int) -> None:
    """Remove what a run left on this machine's disk: a temp dir being written, or a whole
    checkpoint that never got its config. Best effort (another machine's worker may have it)."""
    folder = Path(settings.LLM_TRAINED_MODELS_DIR)
    for path in [*folder.glob(f".run-{run_id}-*"), *folder.glob(f"run-{run_id}-*")]:
        if not ModelConfig.objects.filter(model=str(path)).exists():
            shutil.rmtree(path, ignore_errors=True)


def training_runs_fail_stale(*, now: datetime | None = None) -> list[int]:
    """Fail the RUNNING runs whose lease expired (their worker is gone), with the reason, and
    remove what they left on disk. No config exists for them: one is made only with DONE.
    Returns the ids failed."""
    now = now or timezone.now()
    failed = []
    for run_id in TrainingRun.objects.filter(
        status=TrainingStatus.RUNNING, lease_expires_at__lt=now
    ).values_list("pk", flat=True):
        if training_run_fail(run_id=run_id, now=now, reason=(
            "The worker stopped answering (its lease expired): it was killed or lost mid-run. "
            "Nothing was kept; retry to train again."
        ), lease_before=now):  # fmt: skip
            training_run_checkpoints_remove(run_id)
            failed.append(run_id)
    return failed


def training_run_fail(
    *,
    run_id: int,
    reason: str,
    now: datetime | None = None,
    lease_before: datetime | None = None,
    **fields: Any,
) -> bool:
    """End a running run as FAILED with its reason; False if it was not running (any more)."""
    running = TrainingRun.objects.filter(pk=run_id, status=TrainingStatus.RUNNING)
    if lease_before is not None:
        running = running.filter(lease_expires_at__lt=lease_before)
    return bool(running.update(status=TrainingStatus.FAILED, reason=reason[:4000],
                               finished_at=now or timezone.now(), lease_expires_at=None,
                               **fields))  # fmt: skip


def training_run_progress(*, run_id: int, **fields: Any) -> bool:
    """Record a running run's progress and renew its lease; False if the run is no longer
    this worker's (failed as lost meanwhile): the caller stops."""
    lease = timezone.now() + timedelta(seconds=settings.LLM_TRAINING_LEASE_SECONDS)
    running = TrainingRun.objects.filter(pk=run_id, status=TrainingStatus.RUNNING)
    return bool(running.update(lease_expires_at=lease, **fields))


def training_run_finish(*, run_id: int, checkpoint: Path, **fields: Any) -> ModelConfig | None:
    """The run's result made durable in one transaction: a new transformers config pointing
    at the finished checkpoint (sampling settings copied from the parent) and the run DONE.
    None, and nothing written, if the run is no longer running (failed as lost meanwhile).
    The checkpoint must already be whole at its final path (written elsewhere, renamed)."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().select_related("parent").get(pk=run_id)
        if run.status != TrainingStatus.RUNNING:
            return None
        parent = run.parent
        name = run.name
        if ModelConfig.objects.filter(name=name).exists():  # taken while it trained
            name = f"{name} (run {run.pk})"[:100]
        config = ModelConfig.objects.create(
            name=name, backend=Backend.TRANSFORMERS, model=str(checkpoint),
            system_prompt=parent.system_prompt, temperature=parent.temperature,
            top_p=parent.top_p, max_new_tokens=parent.max_new_tokens,
            frequency_penalty=parent.frequency_penalty, presence_penalty=parent.presence_penalty,
            seed=parent.seed, stop_sequences=parent.stop_sequences, timeout_s=parent.timeout_s,
            created_by=run.created_by,
        )  # fmt: skip
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingStatus.DONE, result=config, checkpoint_path=str(checkpoint),
            finished_at=timezone.now(), lease_expires_at=None, **fields,
        )  # fmt: skip
    return config
