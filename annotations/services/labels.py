"""Labels: submit and undo (the other half of the annotators' hot path; see claims)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from pydantic import ValidationError as PydanticValidationError

from annotations import hot_sql
from annotations.hooks import labels_committed_notify
from annotations.kinds import ItemKind, LabelValue, validation_message
from annotations.models import (
    UNDO_WINDOW,
    Assignment,
    Item,
    Label,
    Outcome,
    Queue,
)
from annotations.services.claims import _membership_lock
from annotations.services.errors import (
    AlreadyLabelled,
    AnnotationError,
    ItemFull,
    LeaseGone,
    NothingToUndo,
)
from core import sql
from core.models import WebhookEvent
from core.webhooks import webhook_emit


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


def _recorded_time(time_spent_ms: int | None, queue: Queue) -> int | None:
    # The lease bounds the time worth recording: an open tab is not work.
    if time_spent_ms is None:
        return None
    return min(time_spent_ms, queue.lease_minutes * 60_000)


class _Refused(Exception):
    """Rolls back a submit; the caller decides between a retry's label and `error`."""

    def __init__(self, error: AnnotationError) -> None:
        self.error = error


def label_submit(
    *,
    assignment_id: int,
    annotator: User,
    value: Mapping[str, Any] | LabelValue,
    time_spent_ms: int | None,
    client_request_id: uuid.UUID,
    queue_id: int | None = None,
    now: datetime | None = None,
) -> tuple[Label, bool]:
    """Store a label and close its lease in one transaction; returns (label, created).

    Idempotent on (annotator, client_request_id): a retry returns the label already stored,
    with created=False. Refuses a label the queue kind does not allow (ValidationError), a
    lease that is closed or not a member's (LeaseGone), an item that already has k labels
    (ItemFull) or one this annotator labelled (AlreadyLabelled). With `queue_id`, the lease
    must also belong to that queue. A `time_spent_ms` of None stores the time as unknown.

    Locks: the conditional UPDATE of the item's label count takes its row lock first, so
    submits on one item queue up there and each sees the count the previous one left.
    """
    now = now or timezone.now()
    params = {"lease": assignment_id, "annotator": annotator.pk}
    found = sql.fetch_models(hot_sql.LEASED_ITEM, params, Item, Queue)
    if found is None:
        raise LeaseGone("That item is not assigned to you.")
    (item, queue), (lease_outcome,) = found
    assert isinstance(item, Item) and isinstance(queue, Queue)
    if queue_id is not None and queue.pk != queue_id:
        raise LeaseGone("That item is not assigned to you.")
    typed = _typed_value(queue.item_kind, value)
    if time_spent_ms is not None and time_spent_ms < 0:
        raise ValidationError("time spent cannot be negative", code="invalid_time")
    if lease_outcome != Outcome.OPEN:
        retry = _retried(annotator, client_request_id, item.pk)
        if retry is not None:
            return retry, False
        raise LeaseGone("Your hold on that item ended; here is the next one.")
    stored = typed.model_dump(mode="json")
    try:
        with transaction.atomic():
            if not sql.execute(hot_sql.COUNT_LABEL, {"item": item.pk, "k": queue.labels_per_item}):
                raise _Refused(ItemFull("That item got all its labels while you were on it."))
            if not sql.execute(hot_sql.CLOSE_LEASE, {"lease": assignment_id, "now": now}):
                raise _Refused(LeaseGone("Your hold on that item ended; here is the next one."))
            label = sql.insert(
                Label(
                    queue=queue,
                    item=item,
                    annotator=annotator,
                    value=stored,
                    time_spent_ms=_recorded_time(time_spent_ms, queue),
                    client_request_id=client_request_id,
                    is_gold=item.is_gold,
                    gold_correct=(stored == item.gold_value) if item.is_gold else None,
                    created_at=now,
                )
            )
    except (_Refused, IntegrityError) as refused:
        # A retry of this very request may have committed while this one waited for a lock.
        retry = _retried(annotator, client_request_id, item.pk)
        if retry is not None:
            return retry, False
        # Their own label, from another tab's submit of the same lease that committed while
        # this one waited for the item's lock, is why: say that, not that others filled it.
        if Label.objects.filter(item=item, annotator=annotator).exists():
            raise AlreadyLabelled("You have already labelled that item.") from None
        if isinstance(refused, _Refused):
            raise refused.error from None
        raise
    labels_committed_notify(queue_ids=[queue.pk])
    webhook_emit(
        event=WebhookEvent.LABEL_CREATED,
        payload={"id": label.pk, "queue_id": queue.pk, "item_id": item.pk,
                 "annotator": annotator.get_username(), "value": stored,
                 "created_at": now},
    )  # fmt: skip
    return label, True


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
