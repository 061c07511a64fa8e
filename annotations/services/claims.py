"""Claiming: an annotator's lease on the next item.

Invariants the services keep, under concurrency:
  * no item gets more than k labels (gold items excepted: every annotator may see those once);
  * no annotator labels an item twice;
  * a submit retried with the same client request id stores one label.

An item the annotator skipped is not offered to them again until nothing else is left for
them; then, when they ask to revisit (`revisit_skipped`), their skipped items come back in the
order of their last skip.

Locking: an annotator's open leases per queue (one current, at most one claimed ahead for the
labelling page) are a partial unique index, so two claims of theirs racing (two tabs) cannot
both lease; the loser finds the winner's lease. A claim takes
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
from dataclasses import dataclass
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
# A claim that lost a race with another of the same annotator's (two tabs) looks again.
CLAIM_LOOKS = 3


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
    elif gold:
        # Gold has no k to count under a lock, and every annotator's claim wants the same few
        # gold rows: locked, they were skipped whenever another claim held them, and gold
        # came below the queue's rate. Nobody twice is the lease's own check and the label's
        # unique index.
        lock = ""
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


def _lease(
    queue: Queue, annotator: User, item: Item, now: datetime, *, ahead: bool
) -> Assignment | None:
    expires = now + queue.lease_duration
    params = {"queue": queue.pk, "item": item.pk, "annotator": annotator.pk, "gold": item.is_gold,
              "now": now, "expires": expires, "k": queue.labels_per_item,
              "ahead": ahead}  # fmt: skip
    row = sql.fetch_one(hot_sql.LEASE, params)
    if row is None:
        return None
    lease = Assignment(
        pk=row[0], queue=queue, item=item, annotator=annotator, created_at=now,
        expires_at=expires, ahead=ahead,
    )  # fmt: skip
    lease._state.adding = False
    lease._state.db = connection.alias
    return lease


def _gold_due(queue: Queue, annotator: User, *, held: int) -> bool:
    """Gold at exactly the queue's rate: the n-th label is gold when floor(n·rate) steps up.
    A lease claimed ahead is for the label after the current lease's (`held` = 1)."""
    if queue.gold_rate <= 0:
        return False
    done = Label.objects.filter(queue=queue, annotator=annotator).count() + held
    return math.floor((done + 1) * queue.gold_rate) > math.floor(done * queue.gold_rate)


def _new_lease(
    queue: Queue,
    annotator: User,
    now: datetime,
    *,
    revisit_skipped: bool,
    ahead_of: Assignment | None = None,
) -> Assignment | None:
    """Lease the next item: a gold one when due, else the first with room under k, else (when
    asked) the one they skipped longest ago. A pick whose item filled up between its snapshot
    and its lock moves on to the next. With `ahead_of` (their current lease) the lease is
    claimed ahead, for the item after that one: never that lease's own item."""
    held = [] if ahead_of is None else [ahead_of.item_id]
    ahead = ahead_of is not None
    # A claim ahead never waits for an item's lock: its transaction already holds the lock of
    # the current lease's item, and two such waits deadlock. "Nothing ahead yet" costs only
    # a later look (the page asks again with its next submit).
    wait = not ahead
    if _gold_due(queue, annotator, held=len(held)):
        gold = _pick(queue, annotator, now, gold=True, skip=held)
        if gold is not None:
            return _lease(queue, annotator, gold, now, ahead=ahead)
    tried: list[int] = list(held)
    for _ in range(CLAIM_ATTEMPTS):
        item = _pick(queue, annotator, now, gold=False, skip=tried)
        if item is None and wait and connection.features.has_select_for_update_skip_locked:
            # SKIP LOCKED passes over an item a submit holds for a moment (its count): before
            # answering "nothing left", look once more, waiting for such locks. Only at the
            # end of a queue, so the hot path keeps its one statement.
            item = _pick(queue, annotator, now, gold=False, skip=tried, wait=True)
        if item is None and revisit_skipped:
            item = _pick(queue, annotator, now, gold=False, skip=tried, wait=wait, skipped=True)
        if item is None:
            return None
        lease = _lease(queue, annotator, item, now, ahead=ahead)
        if lease is not None:
            return lease
        tried.append(item.pk)
    return None


@dataclass(frozen=True)
class Held:
    """An annotator's leases in a queue: the item they are on, and the next one held ahead."""

    current: Assignment | None
    ahead: Assignment | None


class _Raced(Exception):
    """Another request of the same annotator changed their leases first: look again."""


def _close(lease: Assignment, outcome: Outcome, now: datetime) -> None:
    # Only while still open: a submit of theirs may have labelled it meanwhile.
    if not Assignment.objects.filter(pk=lease.pk, outcome=Outcome.OPEN).update(
        outcome=outcome, closed_at=now
    ):
        raise _Raced


def _promote(lease: Assignment, queue: Queue, now: datetime) -> Assignment:
    expires = now + queue.lease_duration
    if not sql.execute(hot_sql.PROMOTE, {"lease": lease.pk, "now": now, "expires": expires}):
        raise _Raced
    lease.ahead = False
    lease.created_at = now
    lease.expires_at = expires
    return lease


def _claim(
    queue: Queue,
    annotator: User,
    now: datetime,
    membership: Membership | None,
    *,
    revisit_skipped: bool,
    ahead: bool = False,
    renew_ahead: bool = False,
) -> Held:
    with transaction.atomic():
        if membership is None:
            found = queue_membership(annotator.pk, queue.pk)
            if found is None:
                raise NotAMember("You are not a member of this queue.")
            membership = found[1]
        ids = [pk for pk in (membership.open_lease_id, membership.ahead_lease_id) if pk]
        open_leases: dict[int | None, Assignment] = {}
        if ids:
            open_leases = {
                lease.pk: lease
                for lease in Assignment.objects.select_related("item").filter(
                    pk__in=ids, outcome=Outcome.OPEN
                )
            }
        current = open_leases.get(membership.open_lease_id)
        next_lease = open_leases.get(membership.ahead_lease_id)
        # An expired lease is closed first (its item went back to the queue when it expired).
        if current is not None and current.expires_at <= now:
            _close(current, Outcome.EXPIRED, now)
            current = None
        if next_lease is not None and next_lease.expires_at <= now:
            _close(next_lease, Outcome.EXPIRED, now)
            next_lease = None
        if current is None and next_lease is not None:
            current, next_lease = _promote(next_lease, queue, now), None
        elif next_lease is not None and renew_ahead:
            # A fresh page holds a fresh lease ahead: the page it replaces releases its own
            # (by id) as it goes, often after this, and must not release this page's.
            _close(next_lease, Outcome.RELEASED, now)
            next_lease = None
        if current is None:
            current = _new_lease(queue, annotator, now, revisit_skipped=revisit_skipped)
        if ahead and current is not None and next_lease is None:
            next_lease = _new_lease(
                queue, annotator, now, revisit_skipped=revisit_skipped, ahead_of=current
            )
        return Held(current=current, ahead=next_lease)


def _claim_or_look_again(
    queue: Queue, annotator: User, now: datetime, membership: Membership | None, **options: Any
) -> Held:
    for _ in range(CLAIM_LOOKS - 1):
        try:
            return _claim(queue, annotator, now, membership, **options)
        except (IntegrityError, _Raced):
            # Another claim of this annotator's (another tab) leased, promoted or closed first
            # (the open-lease index): theirs is the lease, and a second look returns it.
            membership = None
    try:
        return _claim(queue, annotator, now, None, **options)
    except (IntegrityError, _Raced):
        raise LeaseGone("Another tab of yours took this item at the same moment.") from None


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
    item went back to the queue when it expired). With no current lease, the lease they hold
    ahead (queue_item_prefetch) becomes the current one. Raises NotAMember for a non-member.
    `membership`, from selectors.queue_and_membership, saves a query on the hot path.
    """
    now = now or timezone.now()
    held = _claim_or_look_again(queue, annotator, now, membership, revisit_skipped=revisit_skipped)
    return held.current


def queue_item_prefetch(
    *,
    queue: Queue,
    annotator: User,
    now: datetime | None = None,
    membership: Membership | None = None,
    revisit_skipped: bool = False,
    renew_ahead: bool = False,
) -> Held:
    """The current lease, as queue_item_claim gives it, and a lease on the item after it,
    claimed ahead: what the labelling page holds so that a key swaps to the next item at once.

    At most one lease ahead (an index says so): one already held is kept, or, with
    `renew_ahead` (a page freshly loaded), released and claimed anew, so that the lease the
    page it replaces releases as it goes (assignment_release, by id) is never this page's. The
    lease ahead counts against k like any other and follows every claim rule: never the
    current lease's item, gold at the queue's rate counting the current lease as the label
    before it. When the current lease closes, the next claim makes the one ahead current and
    starts its time then. Nothing else to hold: `ahead` is None.
    """
    now = now or timezone.now()
    return _claim_or_look_again(
        queue, annotator, now, membership, revisit_skipped=revisit_skipped, ahead=True,
        renew_ahead=renew_ahead,
    )  # fmt: skip


def assignment_release(*, assignment_id: int, annotator: User, queue_id: int | None = None) -> None:
    """Give back a lease held ahead, unlabelled and unseen (the labelling page went away).
    Only a lease still ahead: the item the annotator is on stays theirs until it expires. The
    lease's own timeout is the backstop when no page says it went. With `queue_id`, the lease
    must be in that queue. Raises LeaseGone when there is no such lease to give back."""
    leases = Assignment.objects.filter(
        pk=assignment_id, annotator=annotator, outcome=Outcome.OPEN, ahead=True
    )
    if queue_id is not None:
        leases = leases.filter(queue_id=queue_id)
    released = leases.update(outcome=Outcome.RELEASED, closed_at=timezone.now())
    if not released:
        raise LeaseGone("That item is not held for you.")


def assignment_skip(*, assignment_id: int, annotator: User) -> None:
    """Give an item back without labelling it; the annotator is offered it again only when
    they revisit their skipped items (queue_item_claim)."""
    skipped = Assignment.objects.filter(
        pk=assignment_id, annotator=annotator, outcome=Outcome.OPEN
    ).update(outcome=Outcome.SKIPPED, closed_at=timezone.now())
    if not skipped:
        raise LeaseGone("That item is no longer yours to skip.")
