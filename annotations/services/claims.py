"""Claiming: an annotator's lease on the next item.

Invariants the services keep, under concurrency:
  * no item gets more than k labels (gold items excepted: every annotator may see those once);
  * no annotator labels an item twice;
  * a submit retried with the same client request id stores one label.

An item the annotator skipped is not offered to them again until nothing else is left for
them; then, when they ask to revisit (`revisit_skipped`), their skipped items come back in the
order of their last skip.

Locking: an annotator's one open lease per queue is a partial unique index, so two claims of
theirs racing (two tabs) cannot both lease; the loser finds the winner's lease. A claim takes
the first candidate item with `FOR UPDATE SKIP LOCKED` and recounts its labels and live leases
in a fresh statement before leasing it. A submit increments the item's label count with a
conditional UPDATE, which takes the item's row lock and refuses a full item in one statement.
On SQLite there is one writer at a time (transactions are IMMEDIATE), which gives the same
guarantees with the same code: `select_for_update` is a no-op there.

The claim and the submit are the annotators' hot path (bench/queues.py): each round trip to
the database counts, so they are written to make few."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from annotations import hot_sql
from annotations.models import (
    Assignment,
    Item,
    Label,
    Outcome,
    Priority,
    Queue,
    QueueMember,
)
from annotations.selectors import Membership, queue_membership
from annotations.services.errors import (
    LeaseGone,
    NotAMember,
)
from core import sql

# A claim whose candidate was taken between its snapshot and its lock tries the next one.
CLAIM_ATTEMPTS = 20


def _membership_lock(queue: Queue, annotator: User) -> QueueMember:
    member = QueueMember.objects.select_for_update().filter(queue=queue, user=annotator).first()
    if member is None:
        raise NotAMember("You are not a member of this queue.")
    return member


# The claim's two statements: annotations/hot_sql.py (PICK, LEASE).


def _pick(
    queue: Queue,
    annotator: User,
    now: Any,
    *,
    gold: bool,
    skip: Sequence[int],
    wait: bool = False,
    skipped: bool = False,
) -> Item | None:
    room = "" if gold else hot_sql.PICK_ROOM
    if skip:
        room += f" AND i.id NOT IN ({', '.join(str(int(pk)) for pk in skip)})"
    lock = "FOR UPDATE OF i" if wait else "FOR UPDATE OF i SKIP LOCKED"
    if not connection.features.has_select_for_update_skip_locked:
        lock = ""  # SQLite: the IMMEDIATE transaction already holds the only write lock
    if skipped:
        query = hot_sql.PICK_SKIPPED.format(room=room, lock=lock)
    else:
        query = hot_sql.PICK.format(
            gold=hot_sql.PICK_GOLD if gold else hot_sql.PICK_REGULAR,
            room=room,
            order=hot_sql.PICK_ORDER[Priority(queue.priority)],
            lock=lock,
        )
    params = {"queue": queue.pk, "annotator": annotator.pk, "now": now,
              "k": queue.labels_per_item}  # fmt: skip
    found = sql.fetch_model(Item, query, params)
    return found[0] if found else None


def _lease(queue: Queue, annotator: User, item: Item, now: datetime) -> Assignment | None:
    expires = now + queue.lease_duration
    params = {"queue": queue.pk, "item": item.pk, "annotator": annotator.pk, "gold": item.is_gold,
              "now": now, "expires": expires, "k": queue.labels_per_item}  # fmt: skip
    row = sql.fetch_one(hot_sql.LEASE, params)
    if row is None:
        return None
    lease = Assignment(
        pk=row[0], queue=queue, item=item, annotator=annotator, created_at=now, expires_at=expires
    )
    lease._state.adding = False
    lease._state.db = connection.alias
    return lease


def _gold_due(queue: Queue, annotator: User) -> bool:
    """Gold at exactly the queue's rate: the n-th label is gold when floor(n·rate) steps up."""
    if queue.gold_rate <= 0:
        return False
    done = Label.objects.filter(queue=queue, annotator=annotator).count()
    return math.floor((done + 1) * queue.gold_rate) > math.floor(done * queue.gold_rate)


def _new_lease(
    queue: Queue, annotator: User, now: datetime, *, revisit_skipped: bool
) -> Assignment | None:
    """Lease the next item: a gold one when due, else the first with room under k, else (when
    asked) the one they skipped longest ago. A pick whose item filled up between its snapshot
    and its lock moves on to the next."""
    if _gold_due(queue, annotator):
        gold = _pick(queue, annotator, now, gold=True, skip=())
        if gold is not None:
            return _lease(queue, annotator, gold, now)
    tried: list[int] = []
    for _ in range(CLAIM_ATTEMPTS):
        item = _pick(queue, annotator, now, gold=False, skip=tried)
        if item is None and connection.features.has_select_for_update_skip_locked:
            # SKIP LOCKED passes over an item a submit holds for a moment (its count): before
            # answering "nothing left", look once more, waiting for such locks. Only at the
            # end of a queue, so the hot path keeps its one statement.
            item = _pick(queue, annotator, now, gold=False, skip=tried, wait=True)
        if item is None and revisit_skipped:
            item = _pick(queue, annotator, now, gold=False, skip=tried, wait=True, skipped=True)
        if item is None:
            return None
        lease = _lease(queue, annotator, item, now)
        if lease is not None:
            return lease
        tried.append(item.pk)
    return None


def _claim(
    queue: Queue,
    annotator: User,
    now: datetime,
    membership: Membership | None,
    revisit_skipped: bool,
) -> Assignment | None:
    with transaction.atomic():
        if membership is None:
            found = queue_membership(annotator.pk, queue.pk)
            if found is None:
                raise NotAMember("You are not a member of this queue.")
            membership = found[1]
        current = None
        if membership.open_lease_id is not None:
            current = (
                Assignment.objects.select_related("item")
                .filter(pk=membership.open_lease_id, outcome=Outcome.OPEN)
                .first()
            )
        if current is not None:
            if current.expires_at > now:
                return current
            current.outcome = Outcome.EXPIRED
            current.closed_at = now
            current.save(update_fields=["outcome", "closed_at"])
        return _new_lease(queue, annotator, now, revisit_skipped=revisit_skipped)


def queue_item_claim(
    *,
    queue: Queue,
    annotator: User,
    now: datetime | None = None,
    membership: Membership | None = None,
    revisit_skipped: bool = False,
) -> Assignment | None:
    """The annotator's current lease in this queue, or a new one on the next item; None when
    nothing is left for them. Runs in its own transaction; see the module docstring for locks.

    Items they skipped come back only with `revisit_skipped`, after every other item.

    Their open lease is returned as it is while it lasts; an expired one is closed first (the
    item went back to the queue when it expired). Raises NotAMember for a non-member.
    `membership`, from selectors.queue_and_membership, saves a query on the hot path.
    """
    now = now or timezone.now()
    try:
        return _claim(queue, annotator, now, membership, revisit_skipped)
    except IntegrityError:
        # Another claim of this annotator's leased first (the one-open-lease index): theirs
        # is the lease, and this second look returns it.
        return _claim(queue, annotator, now, None, revisit_skipped)


def assignment_skip(*, assignment_id: int, annotator: User) -> None:
    """Give an item back without labelling it; the annotator is offered it again only when
    they revisit their skipped items (queue_item_claim)."""
    skipped = Assignment.objects.filter(
        pk=assignment_id, annotator=annotator, outcome=Outcome.OPEN
    ).update(outcome=Outcome.SKIPPED, closed_at=timezone.now())
    if not skipped:
        raise LeaseGone("That item is no longer yours to skip.")
