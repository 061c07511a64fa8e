"""Every write of the rewards app that the web process makes (no torch here).

The training run itself, which needs torch, is rewards/training.py, run by the worker.

Locking: a version row is the job. `reward_training_start` inserts a QUEUED row; the partial
unique index `reward_version_one_running` allows one queued-or-running version per reward
model, so a second trigger (labels, beat, a double click) finds it and starts nothing. The
worker claims the row with a conditional UPDATE (QUEUED → TRAINING); every later write of the
run is conditional on the row still being TRAINING/EVALUATING, so a run whose lease was reaped
(its worker presumed dead) can change nothing. Promotion and roll back lock the reward model
row, so the active version changes in one transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Task, current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from annotations.models import Label, Priority, Queue
from core.models import WebhookEvent
from core.streams import stream_send
from core.webhooks import webhook_emit
from rewards.models import (
    GOOD,
    RUNNING,
    RewardModel,
    RewardVersion,
    Speed,
    SplitGroup,
    Status,
    Trigger,
)
from rewards.schemas import Hyperparameters, Readiness

MARKER = "arbiter.json"
WEIGHTS = "model.safetensors"


class RewardError(Exception):
    """A domain error with a message fit for the page or the API."""

    status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(RewardError):
    status = 404


class NoActiveVersion(RewardError):
    pass


def reward_model_group(reward_model_id: int) -> str:
    return f"reward-model-{reward_model_id}"


def default_hyperparameters(*, speed: str, max_length: int) -> Hyperparameters:
    if speed == Speed.FAST:
        return Hyperparameters(max_length=max_length, learning_rate=1e-2, steps=300)
    return Hyperparameters(
        max_length=max_length, learning_rate=5e-5, epochs=settings.REWARD_FULL_EPOCHS,
        batch_size=16, weight_decay=0.0,
    )  # fmt: skip


def artifacts_dir() -> Path:
    return Path(settings.REWARD_MODELS_DIR)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_intact(version: RewardVersion) -> bool:
    """The version's checkpoint is there, whole, and its weights are the ones written."""
    if not version.artifact_path or not version.artifact_sha256:
        return False
    path = Path(version.artifact_path)
    if not (path / MARKER).is_file() or not (path / WEIGHTS).is_file():
        return False
    return file_sha256(path / WEIGHTS) == version.artifact_sha256


# --- reward models ------------------------------------------------------------------------
def reward_model_save(
    *, reward_model: RewardModel, queues: Iterable[Queue], user: User | None
) -> RewardModel:
    """Save a reward model a RewardModelForm validated, with the queues whose labels train it."""
    with transaction.atomic():
        if reward_model.pk is None:
            reward_model.created_by = user
            reward_model.save()
        else:
            # Never the active version: only promotion and roll back change it, under a lock.
            settings_fields = [
                f.name
                for f in RewardModel._meta.concrete_fields
                if f.editable and f.name not in ("id", "active_version")
            ]
            reward_model.save(update_fields=settings_fields)
            # Its queues may have changed: count the labels again.
            reward_model.readiness = {}
            RewardModel.objects.filter(pk=reward_model.pk).update(readiness={})
        reward_model.queues.set(list(queues))
    return reward_model


# The tasks these services send, by their registered names: rewards.tasks imports this module,
# so this one does not import it back (rewards.apps registers the tasks in every process).
TRAINING_TASK = "rewards.tasks.reward_training_task"
SCORES_REFRESH_TASK = "rewards.tasks.reward_scores_refresh_task"
DEBATE_SCORES_FILL_TASK = "rewards.tasks.debate_scores_fill_task"


def _task(name: str) -> Task:
    return current_app.tasks[name]


# --- starting runs ------------------------------------------------------------------------
def reward_training_start(
    *,
    reward_model: RewardModel,
    speed: str,
    trigger: str,
    user: User | None = None,
    attempt: int = 1,
) -> RewardVersion | None:
    """Queue a training run, enqueued on commit; None if one is already queued or running
    (the partial unique index decides, so racing triggers start one run)."""
    hp = default_hyperparameters(speed=speed, max_length=reward_model.max_length)
    try:
        with transaction.atomic():
            last = reward_model.versions.aggregate(n=Max("number"))["n"] or 0
            version = RewardVersion.objects.create(
                reward_model=reward_model,
                number=last + 1,
                speed=speed,
                trigger=trigger,
                hyperparameters=hp.model_dump(mode="json"),
                created_by=user,
                attempt=attempt,
            )
            transaction.on_commit(lambda: _task(TRAINING_TASK).delay(version.pk))
    except IntegrityError:
        return None
    version_announce(reward_model.pk, version)
    return version


def reward_retrain_now(*, reward_model: RewardModel, user: User, speed: str) -> RewardVersion:
    """A researcher's "Retrain now"; RewardError if a run is already queued or running, or
    while the labels are not enough to train and evaluate a version."""
    ready = reward_model_readiness_refresh(reward_model=reward_model)
    if not ready.ready:
        raise RewardError(f"Not enough labels yet: {readiness_text(ready)}")
    version = reward_training_start(
        reward_model=reward_model, speed=speed, trigger=Trigger.MANUAL, user=user
    )
    if version is None:
        raise RewardError("A training run of this reward model is already queued or running.")
    return version


def _new_labels(reward_model: RewardModel, since: int) -> int:
    queue_ids = list(reward_model.queues.values_list("pk", flat=True))
    return Label.objects.filter(queue_id__in=queue_ids, pk__gt=since).count()


def _watermark(reward_model: RewardModel, *, speed: str | None = None) -> int:
    versions = reward_model.versions.exclude(status=Status.FAILED)
    if speed is not None:
        versions = versions.filter(speed=speed)
    return versions.aggregate(w=Max("label_watermark"))["w"] or 0


def readiness_text(readiness: Readiness) -> str:
    """What is missing, for the page, the API and errors."""
    return (
        f"{readiness.labels_needed} more label{'s' if readiness.labels_needed != 1 else ''} "
        f"needed ({readiness.train_pairs} training pairs of {readiness.min_train_pairs}, "
        f"{readiness.heldout_pairs} held-out pairs of {readiness.min_heldout_pairs}; one a/b "
        "label on a new item makes one pair)."
    )


def _label_watermark(reward_model: RewardModel) -> int:
    queue_ids = list(reward_model.queues.values_list("pk", flat=True))
    return Label.objects.filter(queue_id__in=queue_ids).aggregate(w=Max("pk"))["w"] or 0


def _readiness_current(reward_model: RewardModel) -> Readiness | None:
    """The stored readiness while it still holds: once ready it stays so (labels only add
    pairs; a run that finds fewer forgets it), else until a label arrives or the minimums
    or the share change."""
    stored = reward_model.typed_readiness
    if stored is None or (stored.min_train_pairs, stored.min_heldout_pairs,
                          stored.heldout_percent) != (settings.REWARD_MIN_TRAIN_PAIRS,
                                                      settings.REWARD_MIN_HELDOUT_PAIRS,
                                                      reward_model.heldout_percent):  # fmt: skip
        return None
    if stored.ready or stored.watermark == _label_watermark(reward_model):
        return stored
    return None


def reward_model_readiness(*, reward_model: RewardModel) -> Readiness:
    """Read only: the stored readiness if it still holds, else counted now."""
    from rewards.data import readiness

    return _readiness_current(reward_model) or readiness(reward_model=reward_model)


def reward_model_readiness_refresh(*, reward_model: RewardModel) -> Readiness:
    """The readiness, counted again (and stored) when it no longer holds. Reads every label
    of the reward model's queues then, so callers refresh only when a run would start."""
    current = _readiness_current(reward_model)
    if current is not None:
        return current
    from rewards.data import readiness

    fresh = readiness(reward_model=reward_model)
    reward_model.readiness = fresh.model_dump(mode="json")
    RewardModel.objects.filter(pk=reward_model.pk).update(readiness=reward_model.readiness)
    return fresh


def reward_model_readiness_forget(*, reward_model_id: int) -> None:
    """A run found too few pairs after all (labels went away): count again next time."""
    RewardModel.objects.filter(pk=reward_model_id).update(readiness={})


def split_groups_store(*, reward_model_id: int, sides: dict[str, bool]) -> None:
    """Store the sides a run decided for groups no run had read (rewards/data.py). A side
    once stored never changes: a racing insert of the same group keeps the first."""
    SplitGroup.objects.bulk_create(
        [SplitGroup(reward_model_id=reward_model_id, group=g, heldout=h) for g, h in sides.items()],
        batch_size=1000, ignore_conflicts=True,
    )  # fmt: skip


def reward_models_check(
    *, queue_ids: Sequence[int] | None = None, now: datetime | None = None
) -> list[RewardVersion]:
    """Start the runs that are due: fast after `fast_every` labels newer than any version's,
    full once `full_every_hours` have passed since the last full run if labels came since —
    either only once the labels are enough to train and evaluate a version (readiness;
    until then nothing starts and no version row is made). Cheap (a count per reward model,
    the readiness counted only when a run is due and it is not known ready); runs after
    label commits and every few seconds by beat.
    """
    now = now or timezone.now()
    models = RewardModel.objects.all()
    if queue_ids is not None:
        models = models.filter(queues__in=queue_ids).distinct()
    started = []
    for reward_model in models:
        stored = reward_model.typed_readiness
        if queue_ids is None and (stored is None or not stored.ready):
            # Beat keeps a waiting reward model's count current, so its page reads it stored.
            reward_model_readiness_refresh(reward_model=reward_model)
        if reward_model.versions.filter(status__in=RUNNING).exists():
            continue
        due: tuple[str, str] | None = None
        if _new_labels(reward_model, _watermark(reward_model)) >= reward_model.fast_every:
            due = (Speed.FAST, Trigger.LABELS)
        elif queue_ids is None and reward_model.full_every_hours:
            last_full = reward_model.versions.filter(speed=Speed.FULL).order_by("-number").first()
            scheduled = last_full is None or last_full.created_at <= now - timedelta(
                hours=reward_model.full_every_hours
            )
            if scheduled and _new_labels(reward_model, _watermark(reward_model, speed=Speed.FULL)):
                due = (Speed.FULL, Trigger.SCHEDULE)
        if due is None or not reward_model_readiness_refresh(reward_model=reward_model).ready:
            continue
        version = reward_training_start(reward_model=reward_model, speed=due[0], trigger=due[1])
        if version is not None:
            started.append(version)
    return started


def reward_scores_due() -> list[int]:
    """Reward models with an active version and open items of an uncertainty-ordered queue
    of theirs that it has not scored yet (items added since it went live)."""
    return list(
        RewardModel.objects.filter(
            active_version__isnull=False,
            queues__priority=Priority.UNCERTAINTY,
            queues__items__complete=False,
            queues__items__uncertainty__isnull=True,
        )
        .values_list("pk", flat=True)
        .distinct()
    )


def labels_committed(*, queue_ids: Sequence[int]) -> None:
    """The annotations hook (annotations/hooks.py): labels were committed in these queues."""
    reward_models_check(queue_ids=queue_ids)


# --- leases -------------------------------------------------------------------------------
def reward_versions_reap(*, now: datetime | None = None) -> list[RewardVersion]:
    """Mark runs whose lease expired (their worker is gone) failed, and queue a retry of
    each. The active version is untouched. Returns the retries queued."""
    now = now or timezone.now()
    retries = []
    stale = RewardVersion.objects.filter(
        status__in=(Status.TRAINING, Status.EVALUATING), lease_expires_at__lt=now
    ).select_related("reward_model")
    for version in list(stale):
        failed = RewardVersion.objects.filter(
            pk=version.pk, status=version.status, lease_expires_at__lt=now
        ).update(
            status=Status.FAILED,
            reason="The worker stopped answering (its lease expired); a retry was queued.",
            finished_at=now,
            lease_expires_at=None,
        )
        if not failed:
            continue
        version.status = Status.FAILED
        version_announce(version.reward_model_id, version)
        retry = reward_training_start(
            reward_model=version.reward_model,
            speed=version.speed,
            trigger=Trigger.RETRY,
            attempt=version.attempt + 1,
        )
        if retry is not None:
            retries.append(retry)
    return retries


# --- the active version -------------------------------------------------------------------
def reward_version_rollback(*, version: RewardVersion, user: User) -> RewardVersion:
    """Make an earlier good version (one that was active) the active one again, atomically.
    Refused for versions that never passed the gate and for a missing or changed checkpoint.
    """
    if version.status not in GOOD:
        raise RewardError(f"Version {version.number} never passed the evaluation gate.")
    if version.status == Status.ACTIVE:
        raise RewardError(f"Version {version.number} is already active.")
    if not artifact_intact(version):
        raise RewardError(
            f"Version {version.number}'s checkpoint is missing or damaged; it cannot go live."
        )
    with transaction.atomic():
        reward_model = RewardModel.objects.select_for_update().get(pk=version.reward_model_id)
        RewardVersion.objects.filter(reward_model=reward_model, status=Status.ACTIVE).update(
            status=Status.RETIRED, reason=f"Rolled back to version {version.number} by {user}."
        )
        changed = RewardVersion.objects.filter(pk=version.pk, status=Status.RETIRED).update(
            status=Status.ACTIVE, reason=""
        )
        if not changed:
            raise RewardError(f"Version {version.number} changed meanwhile; reload the page.")
        reward_model.active_version = version
        reward_model.save(update_fields=["active_version"])
        transaction.on_commit(lambda: _after_activation(reward_model.pk))
    version.refresh_from_db()
    version_announce(reward_model.pk, version)
    return version


def _after_activation(reward_model_id: int) -> None:
    _task(SCORES_REFRESH_TASK).delay(reward_model_id)
    # The automatic judge may now pick this version: debates get its scores.
    _task(DEBATE_SCORES_FILL_TASK).delay()


def version_promote(
    *, version_id: int, baseline_id: int | None, fields: dict[str, Any]
) -> tuple[bool, str]:
    """The gate's decision made durable, in one transaction: the candidate (still EVALUATING)
    becomes active and the previous active version retired — unless the active version is
    no longer the baseline it was compared with. Returns (promoted, reason)."""
    with transaction.atomic():
        version = RewardVersion.objects.select_related("reward_model").get(pk=version_id)
        reward_model = RewardModel.objects.select_for_update().get(pk=version.reward_model_id)
        running = RewardVersion.objects.filter(pk=version_id, status=Status.EVALUATING)
        if reward_model.active_version_id != baseline_id:
            reason = "The active version changed while this one was evaluated; retrain to compare."
            if running.update(status=Status.REJECTED, reason=reason, **fields):
                _version_announce_outside(version, WebhookEvent.REWARD_VERSION_REJECTED, reason)
            return False, reason
        # Retire first: the one-active-version index is checked statement by statement.
        RewardVersion.objects.filter(reward_model=reward_model, status=Status.ACTIVE).update(
            status=Status.RETIRED, reason=f"Replaced by version {version.number}."
        )
        if not running.update(status=Status.ACTIVE, reason="", **fields):
            transaction.set_rollback(True)  # reaped meanwhile: the retirement is undone too
            return False, "lost"
        reward_model.active_version_id = version_id
        reward_model.save(update_fields=["active_version"])
        transaction.on_commit(lambda: _after_activation(reward_model.pk))
        _version_announce_outside(version, WebhookEvent.REWARD_VERSION_PROMOTED, "")
    return True, ""


def _version_announce_outside(version: RewardVersion, event: WebhookEvent, reason: str) -> None:
    payload = {"reward_model_id": version.reward_model_id, "version_id": version.pk,
               "number": version.number, "reason": reason}  # fmt: skip
    webhook_emit(event=event, payload=payload)


def version_progress(
    *, version: RewardVersion, step: int, total: int, loss: float | None, status: str
) -> bool:
    """Renew a run's lease and record its progress; False if the run is no longer this
    worker's (reaped as lost), in which case the caller stops."""
    now = timezone.now()
    updated = RewardVersion.objects.filter(
        pk=version.pk, status__in=(Status.TRAINING, Status.EVALUATING)
    ).update(
        progress_step=step,
        progress_total=total,
        status=status,
        lease_expires_at=now + timedelta(seconds=settings.REWARD_LEASE_SECONDS),
    )
    if updated:
        event = {"version": version.pk, "number": version.number, "step": step, "total": total,
                 "loss": loss, "status": status}  # fmt: skip
        _send(version.reward_model_id, event)
    return bool(updated)


def version_heartbeat(*, version_id: int) -> bool:
    """Renew a running version's lease; False if it was reaped meanwhile."""
    lease = timezone.now() + timedelta(seconds=settings.REWARD_LEASE_SECONDS)
    running = RewardVersion.objects.filter(
        pk=version_id, status__in=(Status.TRAINING, Status.EVALUATING)
    )
    return bool(running.update(lease_expires_at=lease))


def version_finish(*, version_id: int, status: str, reason: str, **fields: Any) -> bool:
    """End a run that did not go live (REJECTED or FAILED), if it is still running."""
    fields = {"finished_at": timezone.now(), "lease_expires_at": None, **fields}
    running = RewardVersion.objects.filter(
        Q(status__in=(Status.TRAINING, Status.EVALUATING)), pk=version_id
    )
    finished = bool(running.update(status=status, reason=reason, **fields))
    if finished and status == Status.REJECTED:
        version = RewardVersion.objects.get(pk=version_id)
        _version_announce_outside(version, WebhookEvent.REWARD_VERSION_REJECTED, reason)
    return finished


def artifact_remove(path: str) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def version_announce(reward_model_id: int, version: RewardVersion) -> None:
    event = {"version": version.pk, "number": version.number, "step": version.progress_step,
             "total": version.progress_total, "loss": None, "status": version.status}  # fmt: skip
    transaction.on_commit(lambda: _send(reward_model_id, event))


def _send(reward_model_id: int, event: dict[str, Any]) -> None:
    # A page not updating live must not fail a training run.
    with contextlib.suppress(Exception):
        stream_send(reward_model_group(reward_model_id), {"type": "training.progress", **event})


# --- checkpoints --------------------------------------------------------------------------
def checkpoint_archive(*, version: RewardVersion) -> Path:
    """The version's checkpoint as a zip (made once, beside it, written whole then renamed);
    a directory that `AutoModelForSequenceClassification.from_pretrained` loads when
    unpacked. RewardError if the version has no intact checkpoint."""
    if not artifact_intact(version):
        raise NotFound(f"Version {version.number} has no intact checkpoint.")
    folder = Path(version.artifact_path)
    name = f"reward-model-{version.reward_model_id}-v{version.number}"
    archive = folder.parent / f"{folder.name}.zip"
    if archive.is_file():
        return archive
    partial = archive.with_name(f".{archive.name}.{uuid.uuid4().hex}.part")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as zipped:
            for path in sorted(folder.iterdir()):
                if path.is_file():
                    zipped.write(path, f"{name}/{path.name}")
        partial.rename(archive)
    finally:
        partial.unlink(missing_ok=True)
    return archive
