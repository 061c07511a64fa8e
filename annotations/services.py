"""Every write of the annotations app: queues, items, claiming, labels.

Invariants the services keep, under concurrency:
  * no item gets more than k labels (gold items excepted: every annotator may see those once);
  * no annotator labels an item twice;
  * a submit retried with the same client request id stores one label.

Locking: an annotator's one open lease per queue is a partial unique index, so two claims of
theirs racing (two tabs) cannot both lease; the loser finds the winner's lease. A claim takes
the first candidate item with `FOR UPDATE SKIP LOCKED` and recounts its labels and live leases
in a fresh statement before leasing it. A submit increments the item's label count with a
conditional UPDATE, which takes the item's row lock and refuses a full item in one statement.
On SQLite there is one writer at a time (transactions are IMMEDIATE), which gives the same
guarantees with the same code: `select_for_update` is a no-op there.

The claim and the submit are the annotators' hot path (bench/queues.py): each round trip to
the database counts, so they are written to make few.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import random
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
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
from annotations.selectors import Membership, queue_membership
from core import sql

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
class DuplicateExternalId(AnnotationError):
    pass


def queue_items_create(
    *, queue: Queue, items: Sequence[NewItem], skip_existing: bool = False
) -> int:
    """Add items to a queue, all or none; returns how many. The one way items are made.

    Debate and amplification call this with their own payload models once they register
    their kind (annotations.kinds.item_kind_register). An external id is unique in its queue
    (a constraint): with `skip_existing`, items whose external id the queue already has are
    left out (adding the same debates twice, or twice at once, adds each once); without it,
    such an item is DuplicateExternalId and nothing is added.

    Locks: the queue's row, first, so adds to one queue run one at a time and each sees the
    external ids the previous one committed.
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
    try:
        with transaction.atomic():
            Queue.objects.select_for_update().filter(pk=queue.pk).exists()
            if skip_existing:
                present = _external_ids_present(queue, rows)
                rows = [row for row in rows if row.external_id not in present]
            regular = sum(1 for row in rows if not row.is_gold)
            Item.objects.bulk_create(rows, batch_size=BULK_BATCH)
            Queue.objects.filter(pk=queue.pk).update(item_count=F("item_count") + regular)
    except IntegrityError:
        present = _external_ids_present(queue, rows)
        if not present:
            raise
        shown = ", ".join(sorted(present)[:5])
        raise DuplicateExternalId(
            f"This queue already has items with external id {shown}."
        ) from None
    queue.refresh_from_db(fields=["item_count"])
    return len(rows)


def _external_ids_present(queue: Queue, rows: Sequence[Item]) -> set[str]:
    wanted = {row.external_id for row in rows if row.external_id}
    if not wanted:
        return set()
    found = Item.objects.filter(queue=queue, external_id__in=wanted)
    return set(found.values_list("external_id", flat=True))


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


# The claim's two statements are written out in SQL: built through the ORM, the candidate
# query alone costs ~3 ms of Python per claim on a small machine, more than the database
# takes to run it. Both run on PostgreSQL and SQLite; only the lock clause differs.
#
# The plan wanted is a walk along the queue's order index that stops at the first item with
# room, probing each candidate's labels, skips and leases by index. The `LIMIT 1 OFFSET 0`
# keeps PostgreSQL from turning the NOT EXISTS probes into anti-joins: merged against this
# annotator's labels, those read every label ever given on the items before the queue's
# front (20–40 ms a claim once a 100k queue is half done, against 0.3 ms). Gold is literal
# text, not a parameter, so the prepared statement's plan can use the gold-only index.
_PICK = f"""
SELECT {sql.columns(Item, "i")}
FROM annotations_item i
WHERE i.queue_id = %(queue)s AND {{gold}} AND NOT i.complete
  AND NOT EXISTS (SELECT 1 FROM annotations_label l
                  WHERE l.item_id = i.id AND l.annotator_id = %(annotator)s LIMIT 1 OFFSET 0)
  AND NOT EXISTS (SELECT 1 FROM annotations_assignment s
                  WHERE s.item_id = i.id AND s.annotator_id = %(annotator)s
                    AND s.outcome = 'skipped' LIMIT 1 OFFSET 0)
  {{room}}
ORDER BY {{order}}
LIMIT 1
{{lock}}
"""
# Labels plus live leases under k: a gold item is exempt (every annotator may see it once).
_ROOM = """AND i.label_count + (SELECT COUNT(*) FROM annotations_assignment a
                         WHERE a.item_id = i.id AND a.outcome = 'open'
                           AND a.expires_at > %(now)s) < %(k)s"""
_ORDER = {
    Priority.FIFO: "i.id",
    Priority.RANDOM: "i.random_key, i.id",
    Priority.UNCERTAINTY: "i.uncertainty DESC NULLS LAST, i.id",
}
# Run after the pick has locked the item, as a new statement: on PostgreSQL a new snapshot,
# which sees a lease another claim committed between the pick's snapshot and its lock.
_LEASE = """
INSERT INTO annotations_assignment
    (queue_id, item_id, annotator_id, outcome, created_at, expires_at)
SELECT %(queue)s, %(item)s, %(annotator)s, 'open', %(now)s, %(expires)s
WHERE %(gold)s OR (SELECT label_count FROM annotations_item WHERE id = %(item)s)
    + (SELECT COUNT(*) FROM annotations_assignment
       WHERE item_id = %(item)s AND outcome = 'open' AND expires_at > %(now)s) < %(k)s
RETURNING id
"""


def _pick(
    queue: Queue, annotator: User, now: Any, *, gold: bool, skip: Sequence[int]
) -> Item | None:
    room = "" if gold else _ROOM
    if skip:
        room += f" AND i.id NOT IN ({', '.join(str(int(pk)) for pk in skip)})"
    lock = "FOR UPDATE OF i SKIP LOCKED"
    if not connection.features.has_select_for_update_skip_locked:
        lock = ""  # SQLite: the IMMEDIATE transaction already holds the only write lock
    query = _PICK.format(
        gold="i.is_gold" if gold else "NOT i.is_gold",
        room=room,
        order=_ORDER[Priority(queue.priority)],
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
    row = sql.fetch_one(_LEASE, params)
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


def _new_lease(queue: Queue, annotator: User, now: datetime) -> Assignment | None:
    """Lease the next item: a gold one when due, else the first with room under k. A pick
    whose item filled up between its snapshot and its lock moves on to the next."""
    if _gold_due(queue, annotator):
        gold = _pick(queue, annotator, now, gold=True, skip=())
        if gold is not None:
            return _lease(queue, annotator, gold, now)
    tried: list[int] = []
    for _ in range(CLAIM_ATTEMPTS):
        item = _pick(queue, annotator, now, gold=False, skip=tried)
        if item is None:
            return None
        lease = _lease(queue, annotator, item, now)
        if lease is not None:
            return lease
        tried.append(item.pk)
    return None


def _claim(
    queue: Queue, annotator: User, now: datetime, membership: Membership | None
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
        return _new_lease(queue, annotator, now)


def queue_item_claim(
    *,
    queue: Queue,
    annotator: User,
    now: datetime | None = None,
    membership: Membership | None = None,
) -> Assignment | None:
    """The annotator's current lease in this queue, or a new one on the next item; None when
    nothing is left for them. Runs in its own transaction; see the module docstring for locks.

    Their open lease is returned as it is while it lasts; an expired one is closed first (the
    item went back to the queue when it expired). Raises NotAMember for a non-member.
    `membership`, from selectors.queue_and_membership, saves a query on the hot path.
    """
    now = now or timezone.now()
    try:
        return _claim(queue, annotator, now, membership)
    except IntegrityError:
        # Another claim of this annotator's leased first (the one-open-lease index): theirs
        # is the lease, and this second look returns it.
        return _claim(queue, annotator, now, None)


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


# Takes the item's row lock and refuses a full item (gold exempt) in one statement.
_COUNT_LABEL = """
UPDATE annotations_item
SET label_count = label_count + 1, complete = (NOT is_gold AND label_count + 1 >= %(k)s)
WHERE id = %(item)s AND (is_gold OR label_count < %(k)s)
"""


class _Refused(Exception):
    """Rolls back a submit; the caller decides between a retry's label and `error`."""

    def __init__(self, error: AnnotationError) -> None:
        self.error = error


# The lease and its item in one round trip, in plain SQL (the hot path; see _PICK).
_LEASED_ITEM = f"""
SELECT {sql.columns(Item, "i")}, {sql.columns(Queue, "q")}, a.outcome
FROM annotations_assignment a
JOIN annotations_item i ON i.id = a.item_id
JOIN annotations_queue q ON q.id = a.queue_id
JOIN annotations_queuemember m ON m.queue_id = a.queue_id AND m.user_id = a.annotator_id
WHERE a.id = %(lease)s AND a.annotator_id = %(annotator)s
"""
_CLOSE_LEASE = """
UPDATE annotations_assignment SET outcome = 'labelled', closed_at = %(now)s
WHERE id = %(lease)s AND outcome = 'open'
"""


def label_submit(
    *,
    assignment_id: int,
    annotator: User,
    value: Mapping[str, Any] | LabelValue,
    time_spent_ms: int,
    client_request_id: uuid.UUID,
    queue_id: int | None = None,
    now: datetime | None = None,
) -> tuple[Label, bool]:
    """Store a label and close its lease in one transaction; returns (label, created).

    Idempotent on (annotator, client_request_id): a retry returns the label already stored,
    with created=False. Refuses a label the queue kind does not allow (ValidationError), a
    lease that is closed or not a member's (LeaseGone), an item that already has k labels
    (ItemFull) or one this annotator labelled (AlreadyLabelled). With `queue_id`, the lease
    must also belong to that queue.

    Locks: the conditional UPDATE of the item's label count takes its row lock first, so
    submits on one item queue up there and each sees the count the previous one left.
    """
    now = now or timezone.now()
    params = {"lease": assignment_id, "annotator": annotator.pk}
    found = sql.fetch_models(_LEASED_ITEM, params, Item, Queue)
    if found is None:
        raise LeaseGone("That item is not assigned to you.")
    (item, queue), (lease_outcome,) = found
    assert isinstance(item, Item) and isinstance(queue, Queue)
    if queue_id is not None and queue.pk != queue_id:
        raise LeaseGone("That item is not assigned to you.")
    typed = _typed_value(queue.item_kind, value)
    if time_spent_ms < 0:
        raise ValidationError("time spent cannot be negative", code="invalid_time")
    if lease_outcome != Outcome.OPEN:
        retry = _retried(annotator, client_request_id, item.pk)
        if retry is not None:
            return retry, False
        raise LeaseGone("Your hold on that item ended; here is the next one.")
    stored = typed.model_dump(mode="json")
    try:
        with transaction.atomic():
            if not sql.execute(_COUNT_LABEL, {"item": item.pk, "k": queue.labels_per_item}):
                raise _Refused(ItemFull("That item got all its labels while you were on it."))
            if not sql.execute(_CLOSE_LEASE, {"lease": assignment_id, "now": now}):
                raise _Refused(LeaseGone("Your hold on that item ended; here is the next one."))
            label = sql.insert(
                Label(
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
            )
    except (_Refused, IntegrityError) as refused:
        # A retry of this very request may have committed while this one waited for a lock.
        retry = _retried(annotator, client_request_id, item.pk)
        if retry is not None:
            return retry, False
        if isinstance(refused, _Refused):
            raise refused.error from None
        if Label.objects.filter(item=item, annotator=annotator).exists():
            raise AlreadyLabelled("You have already labelled that item.") from None
        raise
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


# A RUNNING export whose worker has been silent this long has lost it (killed, machine gone):
# exports_requeue_stale starts it again, up to EXPORT_ATTEMPTS runs, then fails it.
EXPORT_STALE_AFTER = timedelta(minutes=2)
EXPORT_HEARTBEAT_EVERY = timedelta(seconds=20)
EXPORT_ATTEMPTS = 3


def export_run(*, job_id: int) -> None:
    """Run one export job. Claimed with a conditional UPDATE, so a second delivery of the task
    finds nothing to claim and returns. The file appears under its final name only when whole.

    The worker beats (heartbeat_at) with its progress and at least every
    EXPORT_HEARTBEAT_EVERY; every write is fenced by the claim's attempt number, so a worker
    given up on by exports_requeue_stale changes nothing more (its file is deleted)."""
    claimed = ExportJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, attempt=F("attempt") + 1, heartbeat_at=timezone.now()
    )
    if not claimed:
        return
    job = ExportJob.objects.get(pk=job_id)
    mine = ExportJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, attempt=job.attempt)
    path: Path | None = None
    try:
        spec = ExportSpec.model_validate(job.spec)
        plan = export_plan(spec)
        mine.update(rows_total=export_size(plan))
        job.file_name = f"{job.pk}-{secrets.token_hex(8)}.{EXTENSIONS[spec.format]}"
        path = export_path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        done = 0
        beat = timezone.now()

        def progress(labels: int) -> None:
            nonlocal done, beat
            before, done = done, done + labels
            now = timezone.now()
            if done // PROGRESS_EVERY != before // PROGRESS_EVERY or now - beat > (
                EXPORT_HEARTBEAT_EVERY
            ):
                mine.update(rows_done=done, heartbeat_at=now)
                beat = now

        with partial.open("wb") as out:
            export_write(plan, out, on_labels=progress)
        partial.replace(path)
    except ExportInvalid as error:
        mine.update(status=JobStatus.FAILED, error=error.message, finished_at=timezone.now())
        return
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        mine.update(status=JobStatus.FAILED, error=message, finished_at=timezone.now())
        raise
    finished = mine.update(
        status=JobStatus.DONE, rows_done=done, file_name=job.file_name, finished_at=timezone.now()
    )
    if not finished:  # given up on while it ran: another attempt owns the job now
        path.unlink(missing_ok=True)


def exports_requeue_stale(*, now: datetime | None = None) -> int:
    """Start again every RUNNING export whose worker has been silent for EXPORT_STALE_AFTER,
    or fail it after EXPORT_ATTEMPTS runs; returns how many it touched. Each job is moved by a
    conditional UPDATE on its attempt number, so two sweeps at once move it once. Run by beat
    every minute (CELERY_BEAT_SCHEDULE)."""
    from annotations.tasks import export_run_task

    now = now or timezone.now()
    cutoff = now - EXPORT_STALE_AFTER
    stale = ExportJob.objects.filter(status=JobStatus.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    )
    moved = 0
    for pk, attempt in list(stale.values_list("pk", "attempt")):
        this = stale.filter(pk=pk, attempt=attempt)
        if attempt >= EXPORT_ATTEMPTS:
            error = (
                f"Its worker stopped {attempt} times (killed, or its machine gone);"
                " retry it from the operations page, or start the export again."
            )
            moved += this.update(status=JobStatus.FAILED, error=error, finished_at=now)
        elif this.update(status=JobStatus.QUEUED, rows_done=0):
            export_run_task.delay(pk)
            moved += 1
    return moved


def export_retry(*, job_id: int) -> ExportJob:
    """Run a failed export again (or send a queued one's task again: a lost message); the
    attempts start over. ValidationError for a job that is running or done."""
    from annotations.tasks import export_run_task

    with transaction.atomic():
        retried = ExportJob.objects.filter(
            pk=job_id, status__in=(JobStatus.FAILED, JobStatus.QUEUED)
        ).update(status=JobStatus.QUEUED, error="", rows_done=0, attempt=0, finished_at=None)
        if not retried:
            raise ValidationError("Only a failed or queued export can be retried.")
        transaction.on_commit(lambda: export_run_task.delay(job_id))
    return ExportJob.objects.get(pk=job_id)


def export_expired(job: ExportJob) -> bool:
    """A finished export whose file exports_expire deleted: DONE, with no file name left."""
    return job.status == JobStatus.DONE and not job.file_name


def exports_expire(*, now: datetime | None = None) -> int:
    """Delete the files of exports finished more than EXPORT_RETENTION_DAYS ago; return how
    many jobs expired. Run it outside a transaction: each job is claimed with a conditional
    UPDATE that commits before its file is deleted, so a file goes only once its job says it
    has expired, and two runs at once never both count a job. Running it again does nothing.
    Leftover `.part` files of exports that died that long ago go too."""
    now = now or timezone.now()
    days = settings.EXPORT_RETENTION_DAYS
    cutoff = now - timedelta(days=days)
    note = (
        f"Expired: the file was deleted {days} days after the export finished."
        " Start the export again for a new one."
    )
    expired = 0
    old = ExportJob.objects.filter(status=JobStatus.DONE, finished_at__lt=cutoff).exclude(
        file_name=""
    )
    for job in list(old.only("pk", "file_name")):  # not iterator(): we write to the table
        path = export_path(job)
        if ExportJob.objects.filter(pk=job.pk, file_name=job.file_name).update(
            file_name="", error=note
        ):
            path.unlink(missing_ok=True)
            expired += 1
    exports_dir = Path(settings.MEDIA_ROOT) / "exports"
    if exports_dir.is_dir():
        for partial in exports_dir.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):  # a running export just renamed it
                if partial.stat().st_mtime < cutoff.timestamp():
                    partial.unlink()
    return expired


# --- API tokens ---------------------------------------------------------------------------
def api_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, user: User, name: str) -> str:
    """Make a bearer token for the API; the token itself is returned once and never stored.
    A name the user already gave another token is a ValidationError (a unique constraint,
    so two requests at once cannot both take it)."""
    token = "arb_" + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            ApiToken.objects.create(user=user, name=name, digest=api_token_digest(token))
    except IntegrityError:
        raise ValidationError(
            f"You already have a token named “{name}”. Pick another name, or revoke that one.",
            code="duplicate_name",
        ) from None
    return token


class TokenNotFound(AnnotationError):
    status = 404


def api_token_revoke(*, user: User, token_id: int) -> None:
    """Delete one of `user`'s API tokens; it stops authenticating at once. Someone else's
    token, or one already gone, is TokenNotFound: the same answer, so ids reveal nothing."""
    deleted, _ = ApiToken.objects.filter(pk=token_id, user=user).delete()
    if not deleted:
        raise TokenNotFound("No such token among yours.")
