"""Real concurrent transactions: 20 annotators claiming and submitting at once on PostgreSQL
(row locks, SKIP LOCKED); a smaller race through SQLite's single-writer path."""

import threading
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count, Max

from annotations.models import Item, Label
from annotations.services import (
    AnnotationError,
    NewItem,
    label_submit,
    queue_item_claim,
    queue_items_create,
)
from tests.annotations.factories import make_queue, pairwise
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
