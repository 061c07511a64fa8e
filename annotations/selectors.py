"""Reads used by more than one view (pages and API)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from annotations import hot_sql
from annotations.exports import AGGREGATION_NAMES, FORMAT_NAMES, ExportSpec
from annotations.models import UNDO_WINDOW, ExportJob, Item, Queue
from core import sql
from core.roles import Role, user_has_role


@dataclass(frozen=True)
class Progress:
    """An annotator's place in a queue, counted against what they can still get: items
    labelled by others up to k, or by themselves, are not theirs to do."""

    done: int  # items they labelled (gold not counted)
    left: int  # items they can still get, their skipped ones aside
    skipped: int  # items they skipped that they can still get (they come back on request)
    can_undo: bool  # they have a label young enough to undo here

    @property
    def percent(self) -> int:
        total = self.done + self.left + self.skipped
        return min(100, round(100 * self.done / total)) if total else 100


def queues_for_annotator(user: User) -> QuerySet[Queue]:
    return Queue.objects.filter(memberships__user=user).order_by("name")


@dataclass(frozen=True)
class Membership:
    """What a claim needs to know first: the annotator is a member, and their open leases
    (the current one, and the one held ahead for the labelling page)."""

    open_lease_id: int | None
    ahead_lease_id: int | None = None


def queue_for_annotator(user: AbstractBaseUser | AnonymousUser, queue_id: int) -> Queue | None:
    """A queue the user labels in: annotators (and admins) who are members; else None."""
    if not isinstance(user, User) or not user_has_role(user, Role.ANNOTATOR):
        return None
    found = queue_and_membership(user, queue_id)
    return found[0] if found else None


def queue_and_membership(
    user: AbstractBaseUser | AnonymousUser, queue_id: int
) -> tuple[Queue, Membership] | None:
    """queue_for_annotator, with the membership a claim can start from (queue_item_claim)."""
    if not isinstance(user, User) or not user_has_role(user, Role.ANNOTATOR):
        return None
    return queue_membership(user.pk, queue_id)


def queue_membership(user_id: int, queue_id: int) -> tuple[Queue, Membership] | None:
    """The queue and the user's membership in it, whatever their roles; None for a
    non-member. On every claim: a prepared statement (core/sql.py)."""
    found = sql.fetch_model(Queue, hot_sql.MEMBER_QUEUE, {"queue": queue_id, "user": user_id})
    if found is None:
        return None
    queue, (open_lease_id, ahead_lease_id) = found
    return queue, Membership(open_lease_id=open_lease_id, ahead_lease_id=ahead_lease_id)


def queues_for_researcher() -> QuerySet[Queue]:
    return Queue.objects.all()


def annotator_progress(queue: Queue, annotator: User, *, now: datetime | None = None) -> Progress:
    """What this annotator has done in the queue and what is left for them (gold items not
    counted). Left: the queue's items that are not complete (gold never is, and item_count
    counts no gold), less those they labelled or skipped. An item others hold a live lease on
    counts as left: it comes back if they let it go. One statement (hot_sql.PROGRESS)."""
    now = now or timezone.now()
    params = {"queue": queue.pk, "annotator": annotator.pk, "undo_since": now - UNDO_WINDOW}
    row = sql.fetch_one(hot_sql.PROGRESS, params)
    assert row is not None
    done, complete, done_open, skipped, can_undo = row
    return Progress(
        done=done,
        left=max(0, queue.item_count - complete - done_open - skipped),
        skipped=skipped,
        can_undo=bool(can_undo),
    )


@dataclass(frozen=True)
class QueueStats:
    items: int
    gold_items: int
    complete: int
    labels: int
    annotators: int


def queue_stats(queue: Queue) -> QueueStats:
    counts = Item.objects.filter(queue=queue).aggregate(
        items=Count("pk", filter=Q(is_gold=False)),
        gold_items=Count("pk", filter=Q(is_gold=True)),
        complete=Count("pk", filter=Q(complete=True)),
        labels=Sum("label_count", default=0),
    )
    return QueueStats(annotators=queue.memberships.count(), **counts)


@dataclass(frozen=True)
class ExportDescription:
    """An export job as a person reads it: queue names and formats in words, not slugs."""

    job: ExportJob
    queues: str
    format: str
    aggregation: str
    filters: list[str]


def export_descriptions(jobs: Iterable[ExportJob]) -> list[ExportDescription]:
    """Each job's spec in words; the queue names come in one query for all of them."""
    jobs = list(jobs)
    specs = [ExportSpec.model_validate(job.spec) for job in jobs]
    wanted = {pk for spec in specs for pk in spec.queues}
    names = dict(Queue.objects.filter(pk__in=wanted).values_list("pk", "name"))
    described = []
    for job, spec in zip(jobs, specs, strict=True):
        filters = []
        if spec.since:
            filters.append(f"labelled from {spec.since:%Y-%m-%d %H:%M} UTC")
        if spec.until:
            filters.append(f"labelled before {spec.until:%Y-%m-%d %H:%M} UTC")
        if spec.min_agreement is not None:
            filters.append(f"agreement at least {spec.min_agreement:g}")
        if spec.min_gold_accuracy is not None:
            filters.append(f"annotators' gold accuracy at least {spec.min_gold_accuracy:g}")
        if spec.include_gold:
            filters.append("gold items included")
        if spec.csv_raw:
            filters.append("CSV cells exactly as written")
        queues = ", ".join(names.get(pk, f"a deleted queue (id {pk})") for pk in spec.queues)
        described.append(
            ExportDescription(
                job=job,
                queues=queues,
                format=FORMAT_NAMES[spec.format],
                aggregation=AGGREGATION_NAMES[spec.aggregation],
                filters=filters,
            )
        )
    return described


def export_jobs_visible(user: User) -> QuerySet[ExportJob]:
    """The export jobs `user` may see and download: their own; every one for admins. The
    pages and the API both ask this (an id outside it is a 404 in both)."""
    jobs = ExportJob.objects.select_related("created_by")
    return jobs if user_has_role(user, Role.ADMIN) else jobs.filter(created_by=user)
