"""Real concurrent transactions: 20 annotators claiming and submitting at once on PostgreSQL
(row locks, SKIP LOCKED); a smaller race through SQLite's single-writer path."""

import math
import threading
import time
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count, Max

from annotations.models import Assignment, Item, Label, Outcome
from annotations.services import (
    AlreadyLabelled,
    AnnotationError,
    LeaseGone,
    NewItem,
    assignment_release,
    label_submit,
    queue_item_claim,
    queue_item_prefetch,
    queue_items_create,
)
from tests.annotations.factories import make_queue, pairwise, pairwise_gold
from tests.factories import UserFactory
from tests.helpers import threads_run

ON_POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]

THREADS = 20
K = 3
ITEMS = 40


@pytest.mark.postgres
def test_twenty_threads_never_break_the_rules(transactional_db, django_db_serialized_rollback):
    # Serialized rollback: the flush after this test then leaves the content types to be
    # restored, instead of re-creating them under new ids that later restores collide with.
    race(threads=THREADS, items=ITEMS)


@pytest.mark.skipif(ON_POSTGRES, reason="the SQLite single-writer path")
def test_threads_on_sqlite_queue_behind_the_single_writer(
    transactional_db, django_db_serialized_rollback
):
    race(threads=5, items=10)


def race(*, threads: int, items: int) -> None:
    annotators: list[Any] = [UserFactory(username=f"racer{n}") for n in range(threads)]
    queue = make_queue(members=annotators, items=pairwise(items), labels_per_item=K)
    start = threading.Barrier(threads)
    stored: list[list[int]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []

    def work(n: int) -> None:
        annotator = annotators[n]
        try:
            start.wait()
            while (lease := queue_item_claim(queue=queue, annotator=annotator)) is not None:
                request_id = uuid.uuid4()
                label, _ = label_submit(
                    assignment_id=lease.pk,
                    annotator=annotator,
                    value={"choice": "a"},
                    time_spent_ms=10,
                    client_request_id=request_id,
                )
                # A client retry of the same submit, racing nobody but itself.
                retry, created = label_submit(
                    assignment_id=lease.pk,
                    annotator=annotator,
                    value={"choice": "a"},
                    time_spent_ms=10,
                    client_request_id=request_id,
                )
                assert retry.pk == label.pk and not created
                stored[n].append(label.pk)
        except (AnnotationError, AssertionError) as error:  # pragma: no cover - reported below
            failures.append(error)
        finally:
            connection.close()

    threads_run(work, threads)
    assert failures == []

    per_item = Label.objects.values("item").annotate(n=Count("*"))
    assert per_item.aggregate(most=Max("n"))["most"] == K  # no item above k
    assert per_item.count() == items  # ...and every item got its k labels
    per_pair = Label.objects.values("item", "annotator").annotate(n=Count("*"))
    assert per_pair.aggregate(most=Max("n"))["most"] == 1  # nobody twice on an item
    # No submit lost: every label a thread was told it stored is there, and nothing else.
    told = sorted(pk for labels in stored for pk in labels)
    assert told == sorted(Label.objects.values_list("pk", flat=True))
    assert len(told) == items * K
    for item in Item.objects.all():
        assert item.label_count == K and item.complete


@pytest.mark.postgres
def test_twenty_pages_holding_the_next_item_never_break_the_rules(
    transactional_db, django_db_serialized_rollback
):
    prefetch_race(threads=THREADS, items=ITEMS)


@pytest.mark.skipif(ON_POSTGRES, reason="the SQLite single-writer path")
def test_pages_holding_the_next_item_on_sqlite_queue_behind_the_single_writer(
    transactional_db, django_db_serialized_rollback
):
    prefetch_race(threads=5, items=10)


GOLD_RATE = 0.2
GOLD_ITEMS = 5
# Annotators with two tabs open on the queue: their tabs race each other for the same leases.
TWO_TABS = 2
# A single-tab page closes (gives its lease ahead back) and opens again every this many items.
REOPEN_EVERY = 4


def prefetch_race(*, threads: int, items: int) -> None:
    """What labelling pages do at once: each holds the next item ahead (queue_item_prefetch),
    labels the current one, asks again (the server's answer to the submit), and now and then
    closes (assignment_release, as the pagehide beacon) and opens again (renew_ahead). Some
    annotators label in two tabs at once."""
    people = threads - TWO_TABS
    annotators: list[Any] = [UserFactory(username=f"page{n}") for n in range(people)]
    tab_of = [annotators[n] if n < people else annotators[n - people] for n in range(threads)]
    two_tabbed = {annotator.pk for annotator in annotators[:TWO_TABS]}
    queue = make_queue(
        members=annotators,
        items=pairwise(items) + pairwise_gold(GOLD_ITEMS),
        labels_per_item=K,
        gold_rate=GOLD_RATE,
    )
    start = threading.Barrier(threads)
    stored: list[list[int]] = [[] for _ in range(threads)]
    out_of_step: list[str] = []
    failures: list[str] = []

    def nothing_left_for(annotator: Any) -> bool:
        return not (
            Item.objects.filter(queue=queue, is_gold=False, complete=False)
            .exclude(labels__annotator=annotator)
            .exists()
        )

    def work(n: int) -> None:
        annotator = tab_of[n]
        alone = annotator.pk not in two_tabbed
        try:
            start.wait()
            held = queue_item_prefetch(queue=queue, annotator=annotator, renew_ahead=True)
            done = 0
            deadline = time.monotonic() + 90  # a page stuck on one lease fails, not hangs
            while True:
                assert time.monotonic() < deadline, f"{annotator} stuck on {held.current}"
                if held.current is None:
                    # Nothing for them right now: others hold the rest, or it is all done.
                    if nothing_left_for(annotator):
                        break
                    connection.close()  # a page waiting holds no connection
                    time.sleep(0.02)
                    held = queue_item_prefetch(queue=queue, annotator=annotator)
                    continue
                try:
                    label, created = label_submit(
                        assignment_id=held.current.pk,
                        annotator=annotator,
                        value={"choice": "a"},
                        time_spent_ms=10,
                        client_request_id=uuid.uuid4(),
                    )
                    if created:
                        stored[n].append(label.pk)
                    done += 1
                except (LeaseGone, AlreadyLabelled):
                    if alone:  # only another tab of theirs may take their lease
                        raise
                if alone and done % REOPEN_EVERY == 0 and held.ahead is not None:
                    # The page closes with the next item held, and opens again.
                    assignment_release(assignment_id=held.ahead.pk, annotator=annotator)
                    held = queue_item_prefetch(queue=queue, annotator=annotator, renew_ahead=True)
                    continue
                after = queue_item_prefetch(queue=queue, annotator=annotator)
                # The page already shows the item it held: the server must agree.
                shown = held.ahead
                if (
                    alone
                    and shown is not None
                    and (after.current is None or after.current != shown)
                ):
                    out_of_step.append(f"{annotator}: held {shown}, got {after.current}")
                held = after
        except (AnnotationError, AssertionError) as error:  # pragma: no cover - reported below
            failures.append(f"{annotator} (alone: {alone}) on {held.current}: {error!r}")
        finally:
            connection.close()

    threads_run(work, threads)
    assert failures == []
    assert out_of_step == []

    regular = Label.objects.filter(is_gold=False)
    per_item = regular.values("item").annotate(n=Count("*"))
    assert per_item.aggregate(most=Max("n"))["most"] == K  # no item above k
    assert per_item.count() == items  # ...and every item got its k labels
    per_pair = Label.objects.values("item", "annotator").annotate(n=Count("*"))
    assert per_pair.aggregate(most=Max("n"))["most"] == 1  # nobody twice on an item, gold too
    told = sorted(pk for labels in stored for pk in labels)
    assert told == sorted(Label.objects.values_list("pk", flat=True))  # none lost, none extra
    for item in Item.objects.filter(is_gold=False):
        assert item.label_count == K and item.complete
    for item in Item.objects.filter(is_gold=True):
        assert item.label_count == item.labels.count() and not item.complete
    # Gold at exactly the queue's rate for each single-tab page, the lease ahead included.
    for annotator in annotators[TWO_TABS:]:
        mine = Label.objects.filter(annotator=annotator)
        assert mine.filter(is_gold=True).count() == math.floor(mine.count() * GOLD_RATE)
    # No lease left behind: every one held ahead was labelled, released or expired.
    assert not Assignment.objects.filter(outcome=Outcome.OPEN).exists()


@pytest.mark.postgres
def test_adding_the_same_items_twice_at_once_adds_each_once(
    transactional_db, django_db_serialized_rollback
):
    # What two clicks on "add judged debates to this queue" do: the same external ids, at once.
    queue = make_queue(items=[], labels_per_item=1)
    batch = pairwise(30, prefix="debate-")
    for n, new in enumerate(batch):
        batch[n] = NewItem(payload=new.payload, external_id=f"debate-{n}")
    start = threading.Barrier(4)
    added: list[int] = []
    failures: list[BaseException] = []

    def add() -> None:
        try:
            start.wait()
            added.append(queue_items_create(queue=queue, items=batch, skip_existing=True))
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert sorted(added) == [0, 0, 0, 30]
    assert Item.objects.filter(queue=queue).count() == 30
    queue.refresh_from_db()
    assert queue.item_count == 30
