"""Every write of the annotations app: queues, items, claiming, labels.

Invariants the services keep, under concurrency:
  * no item gets more than k labels (gold items excepted: every annotator may see those once);
  * no annotator labels an item twice;
  * a submit retried with the same client request id stores one label.

Locking: a claim locks the annotator's QueueMember row (one claim at a time per annotator and
queue), then takes the first candidate item with `FOR UPDATE SKIP LOCKED` and recounts its
labels and live leases in a fresh statement before leasing it. A submit locks the item row.
On SQLite there is one writer at a time (transactions are IMMEDIATE), which gives the same
guarantees with the same code: `select_for_update` is a no-op there.
"""

from __future__ import annotations

import hashlib
import math
import random
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from pydantic import ValidationError as PydanticValidationError

from annotations.exports import (
    EXTENSIONS,
    PROGRESS_EVERY,
    ExportInvalid,
    ExportSpec,
    export_plan,
    export_size,
    export_write,
)
from annotations.kinds import ItemKind, LabelValue, Payload, validation_message
from annotations.models import (
    UNDO_WINDOW,
    ApiToken,
    Assignment,
    ExportJob,
    Item,
    JobStatus,
    Label,
    Outcome,
    Priority,
    Queue,
    QueueMember,
)

BULK_BATCH = 2000
# A claim whose candidate was taken between its snapshot and its lock tries the next one.
CLAIM_ATTEMPTS = 20


class AnnotationError(Exception):
    """A domain error with a message fit to show the annotator or return in the API."""

    status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAMember(AnnotationError):
    status = 403


class LeaseGone(AnnotationError):
    pass


class ItemFull(AnnotationError):
    pass


class AlreadyLabelled(AnnotationError):
    pass


class NothingToUndo(AnnotationError):
    pass


@dataclass(frozen=True)
class NewItem:
    """One item for queue_items_create: a typed payload, and the expected label for gold."""

    payload: Payload
    gold: LabelValue | None = None
    external_id: str = ""


# --- queues -------------------------------------------------------------------------------
def queue_save(*, queue: Queue, user: User | None) -> Queue:
    """Save a queue a QueueForm has validated (new or edited)."""
    if queue.pk is None and user is not None:
        queue.created_by = user
    queue.save()
    return queue


def queue_members_set(*, queue: Queue, users: Iterable[User]) -> None:
    """Make `users` exactly the queue's members. Leases of removed members are released."""
    wanted = {user.pk for user in users}
    with transaction.atomic():
        current = set(QueueMember.objects.filter(queue=queue).values_list("user_id", flat=True))
        removed = current - wanted
        QueueMember.objects.filter(queue=queue, user_id__in=removed).delete()
        Assignment.objects.filter(
            queue=queue, annotator_id__in=removed, outcome=Outcome.OPEN
        ).update(outcome=Outcome.RELEASED, closed_at=timezone.now())
        QueueMember.objects.bulk_create(
            [QueueMember(queue=queue, user_id=pk) for pk in wanted - current]
        )


# --- items --------------------------------------------------------------------------------
def queue_items_create(*, queue: Queue, items: Sequence[NewItem]) -> int:
    """Add items to a queue, all or none; returns how many. The one way items are made.

    Debate and amplification call this with their own payload models once they register
    their kind (annotations.kinds.item_kind_register).
    """
    kind = queue.item_kind
    rows = []
    for number, new in enumerate(items, start=1):
        if not isinstance(new.payload, kind.payload_model):
            raise ValidationError(
                f"item {number}: a {queue.kind} queue takes {kind.payload_model.__name__} "
                f"payloads, not {type(new.payload).__name__}"
            )
        if new.gold is not None and not isinstance(new.gold, kind.value_model):
            raise ValidationError(
                f"item {number}: gold value must be a {kind.value_model.__name__}"
            )
        rows.append(
            Item(
                queue=queue,
                payload=new.payload.model_dump(mode="json"),
                external_id=new.external_id,
                random_key=random.random(),
                is_gold=new.gold is not None,
                gold_value=new.gold.model_dump(mode="json") if new.gold is not None else None,
            )
        )
    regular = sum(1 for row in rows if not row.is_gold)
    with transaction.atomic():
        Item.objects.bulk_create(rows, batch_size=BULK_BATCH)
        Queue.objects.filter(pk=queue.pk).update(item_count=F("item_count") + regular)
    queue.refresh_from_db(fields=["item_count"])
    return len(rows)


def item_scores_set(*, scores: Mapping[int, float | None]) -> int:
    """Write reward-model uncertainties onto items (the `uncertainty` priority reads them).

    Called by the rewards app; None clears a score. Returns the number of items updated.
    """
    items = [Item(pk=pk, uncertainty=score) for pk, score in scores.items()]
    for item in items:
        if item.uncertainty is not None and not math.isfinite(item.uncertainty):
            raise ValidationError(f"item {item.pk}: uncertainty must be a finite number")
    with transaction.atomic():
        return Item.objects.bulk_update(items, ["uncertainty"], batch_size=BULK_BATCH)


# --- claiming -----------------------------------------------------------------------------
def _membership_lock(queue: Queue, annotator: User) -> QueueMember:
    member = QueueMember.objects.select_for_update().filter(queue=queue, user=annotator).first()
    if member is None:
        raise NotAMember("You are not a member of this queue.")
    return member


def _candidates(queue: Queue, annotator: User, now: datetime, *, gold: bool) -> QuerySet[Item]:
    labelled = Label.objects.filter(item=OuterRef("pk"), annotator=annotator)
    skipped = Assignment.objects.filter(
        item=OuterRef("pk"), annotator=annotator, outcome=Outcome.SKIPPED
    )
    items = (
        Item.objects.filter(queue=queue, is_gold=gold, complete=False)
        .exclude(Exists(labelled))
        .exclude(Exists(skipped))
    )
    if not gold:
        live = (
            Assignment.objects.filter(item=OuterRef("pk"), outcome=Outcome.OPEN, expires_at__gt=now)
            .order_by()
            .values("item")
            .annotate(n=Count("*"))
            .values("n")
        )
        items = items.alias(taken=F("label_count") + Coalesce(Subquery(live), Value(0))).filter(
            taken__lt=queue.labels_per_item
        )
    if queue.priority == Priority.RANDOM:
        return items.order_by("random_key", "id")
    if queue.priority == Priority.UNCERTAINTY:
        return items.order_by(F("uncertainty").desc(nulls_last=True), "id")
    return items.order_by("id")


def _still_open(item_id: int, queue: Queue, now: datetime) -> bool:
    """Recount under the item's lock, in a new statement (so a new snapshot on Postgres)."""
    label_count = Item.objects.filter(pk=item_id).values_list("label_count", flat=True).first()
    if label_count is None:
        return False
    live = Assignment.objects.filter(
        item_id=item_id, outcome=Outcome.OPEN, expires_at__gt=now
    ).count()
    return label_count + live < queue.labels_per_item


def _lock_first(items: QuerySet[Item]) -> Item | None:
    if connection.features.has_select_for_update_skip_locked:
        items = items.select_for_update(skip_locked=True, of=("self",))
    return items.first()


def _gold_due(queue: Queue, annotator: User) -> bool:
    """Gold at exactly the queue's rate: the n-th label is gold when floor(n·rate) steps up."""
    if queue.gold_rate <= 0:
        return False
    done = Label.objects.filter(queue=queue, annotator=annotator).count()
    return math.floor((done + 1) * queue.gold_rate) > math.floor(done * queue.gold_rate)


def _next_item(queue: Queue, annotator: User, now: datetime) -> Item | None:
    if _gold_due(queue, annotator):
        gold = _lock_first(_candidates(queue, annotator, now, gold=True))
        if gold is not None:
            return gold
    tried: list[int] = []
    candidates = _candidates(queue, annotator, now, gold=False)
    for _ in range(CLAIM_ATTEMPTS):
        item = _lock_first(candidates.exclude(pk__in=tried))
        if item is None:
            return None
        if _still_open(item.pk, queue, now):
            return item
        tried.append(item.pk)
    return None


def queue_item_claim(
    *, queue: Queue, annotator: User, now: datetime | None = None
) -> Assignment | None:
    """The annotator's current lease in this queue, or a new one on the next item; None when
    nothing is left for them. Runs in its own transaction; see the module docstring for locks.

    Their open lease is returned as it is while it lasts; an expired one is closed first (the
    item went back to the queue when it expired).
    """
    now = now or timezone.now()
    with transaction.atomic():
        _membership_lock(queue, annotator)
        current = (
            Assignment.objects.select_related("item")
            .filter(queue=queue, annotator=annotator, outcome=Outcome.OPEN)
            .first()
        )
        if current is not None:
            if current.expires_at > now:
                return current
            current.outcome = Outcome.EXPIRED
            current.closed_at = now
            current.save(update_fields=["outcome", "closed_at"])
        item = _next_item(queue, annotator, now)
        if item is None:
            return None
        return Assignment.objects.create(
            queue=queue,
            item=item,
            annotator=annotator,
            created_at=now,
            expires_at=now + queue.lease_duration,
        )


def assignment_skip(*, assignment_id: int, annotator: User) -> None:
    """Give an item back without labelling it; the annotator is not offered it again."""
    skipped = Assignment.objects.filter(
        pk=assignment_id, annotator=annotator, outcome=Outcome.OPEN
    ).update(outcome=Outcome.SKIPPED, closed_at=timezone.now())
    if not skipped:
        raise LeaseGone("That item is no longer yours to skip.")


# --- labels -------------------------------------------------------------------------------
def _typed_value(kind: ItemKind, value: Mapping[str, Any] | LabelValue) -> LabelValue:
    if isinstance(value, kind.value_model):
        return value
    try:
        return kind.value(dict(value) if isinstance(value, Mapping) else value)
    except PydanticValidationError as error:
        raise ValidationError(
            f"Not a {kind.name} label: {validation_message(error)}", code="invalid_value"
        ) from None


def _retried(annotator: User, client_request_id: uuid.UUID, item_id: int) -> Label | None:
    label = Label.objects.filter(annotator=annotator, client_request_id=client_request_id).first()
    if label is not None and label.item_id != item_id:
        raise AnnotationError("This request id was already used for another item.")
    return label


def label_submit(
    *,
    assignment_id: int,
    annotator: User,
    value: Mapping[str, Any] | LabelValue,
    time_spent_ms: int,
    client_request_id: uuid.UUID,
    queue_id: int | None = None,
    now: datetime | None = None,
) -> Label:
    """Store a label and close its lease in one transaction, holding the item's row lock.

    Idempotent on (annotator, client_request_id): a retry returns the label already stored.
    Refuses a label the queue kind does not allow (ValidationError), a lease that is closed
    (LeaseGone), an item that already has k labels (ItemFull) or one this annotator labelled.
    With `queue_id`, the lease must also belong to that queue.
    """
    now = now or timezone.now()
    leases = Assignment.objects.select_related("queue").filter(
        pk=assignment_id, annotator=annotator
    )
    if queue_id is not None:
        leases = leases.filter(queue_id=queue_id)
    assignment = leases.first()
    if assignment is None:
        raise LeaseGone("That item is not assigned to you.")
    queue = assignment.queue
    typed = _typed_value(queue.item_kind, value)
    if time_spent_ms < 0:
        raise ValidationError("time spent cannot be negative", code="invalid_time")
    retry = _retried(annotator, client_request_id, assignment.item_id)
    if retry is not None:
        return retry
    with transaction.atomic():
        item = Item.objects.select_for_update().get(pk=assignment.item_id)
        # A retry of this very request may have committed while we waited for the lock.
        retry = _retried(annotator, client_request_id, item.pk)
        if retry is not None:
            return retry
        outcome = Assignment.objects.filter(pk=assignment.pk).values_list("outcome", flat=True)
        if outcome.first() != Outcome.OPEN:
            raise LeaseGone("Your hold on that item ended; here is the next one.")
        if Label.objects.filter(item=item, annotator=annotator).exists():
            raise AlreadyLabelled("You have already labelled that item.")
        if not item.is_gold and item.label_count >= queue.labels_per_item:
            raise ItemFull("That item got all its labels while you were on it.")
        stored = typed.model_dump(mode="json")
        label = Label.objects.create(
            queue=queue,
            item=item,
            annotator=annotator,
            value=stored,
            # The lease bounds the time worth recording: an open tab is not work.
            time_spent_ms=min(time_spent_ms, queue.lease_minutes * 60_000),
            client_request_id=client_request_id,
            is_gold=item.is_gold,
            gold_correct=(stored == item.gold_value) if item.is_gold else None,
            created_at=now,
        )
        item.label_count += 1
        item.complete = not item.is_gold and item.label_count >= queue.labels_per_item
        item.save(update_fields=["label_count", "complete"])
        Assignment.objects.filter(pk=assignment.pk).update(outcome=Outcome.LABELLED, closed_at=now)
    return label


def label_undo(*, queue: Queue, annotator: User, now: datetime | None = None) -> Assignment:
    """Take back the annotator's last label in this queue if it is under 60 s old, and lease
    its item to them again (their current lease, if any, is released)."""
    now = now or timezone.now()
    with transaction.atomic():
        _membership_lock(queue, annotator)
        label = (
            Label.objects.filter(queue=queue, annotator=annotator)
            .order_by("-created_at", "-id")
            .first()
        )
        if label is None or now - label.created_at > UNDO_WINDOW:
            raise NothingToUndo("Nothing to undo: labels can be undone for 60 seconds.")
        item = Item.objects.select_for_update().get(pk=label.item_id)
        label.delete()
        item.label_count -= 1
        item.complete = False
        item.save(update_fields=["label_count", "complete"])
        Assignment.objects.filter(Q(outcome=Outcome.OPEN), queue=queue, annotator=annotator).update(
            outcome=Outcome.RELEASED, closed_at=now
        )
        return Assignment.objects.create(
            queue=queue,
            item=item,
            annotator=annotator,
            created_at=now,
            expires_at=now + queue.lease_duration,
        )


# --- exports ------------------------------------------------------------------------------
def export_start(*, user: User, spec: ExportSpec) -> ExportJob:
    """Check the spec (ExportInvalid on a problem), store a QUEUED job, run it after commit."""
    from annotations.tasks import export_run_task

    export_plan(spec)
    with transaction.atomic():
        job = ExportJob.objects.create(created_by=user, spec=spec.model_dump(mode="json"))
        transaction.on_commit(lambda: export_run_task.delay(job.pk))
    return job


def export_path(job: ExportJob) -> Path:
    return Path(settings.MEDIA_ROOT) / "exports" / job.file_name


def export_run(*, job_id: int) -> None:
    """Run one export job. Claimed with a conditional UPDATE, so a second delivery of the task
    finds nothing to claim and returns. The file appears under its final name only when whole."""
    claimed = ExportJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING
    )
    if not claimed:
        return
    job = ExportJob.objects.get(pk=job_id)
    try:
        spec = ExportSpec.model_validate(job.spec)
        plan = export_plan(spec)
        ExportJob.objects.filter(pk=job_id).update(rows_total=export_size(plan))
        job.file_name = f"{job.pk}-{secrets.token_hex(8)}.{EXTENSIONS[spec.format]}"
        path = export_path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        done = 0

        def progress(labels: int) -> None:
            nonlocal done
            before, done = done, done + labels
            if done // PROGRESS_EVERY != before // PROGRESS_EVERY:
                ExportJob.objects.filter(pk=job_id).update(rows_done=done)

        with partial.open("wb") as out:
            export_write(plan, out, on_labels=progress)
        partial.replace(path)
    except ExportInvalid as error:
        _export_failed(job_id, error.message)
        return
    except Exception as error:
        _export_failed(job_id, f"{type(error).__name__}: {error}")
        raise
    ExportJob.objects.filter(pk=job_id).update(
        status=JobStatus.DONE, rows_done=done, file_name=job.file_name, finished_at=timezone.now()
    )


def _export_failed(job_id: int, message: str) -> None:
    ExportJob.objects.filter(pk=job_id).update(
        status=JobStatus.FAILED, error=message, finished_at=timezone.now()
    )


# --- API tokens ---------------------------------------------------------------------------
def api_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, user: User, name: str) -> str:
    """Make a bearer token for the API; the token itself is returned once and never stored."""
    token = "arb_" + secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, name=name, digest=api_token_digest(token))
    return token
