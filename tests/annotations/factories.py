"""Factories and small builders for annotations tests (kept here, beside the tests, so the
shared tests/factories.py stays free for the other apps)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable
from typing import Any, cast

import factory

from annotations.exports import ExportSpec, export_plan, export_write
from annotations.kinds import ChoiceValue, LikertPayload, PairwisePayload, RatingValue
from annotations.models import Priority, Queue
from annotations.services import (
    NewItem,
    label_submit,
    queue_item_claim,
    queue_items_create,
    queue_members_set,
)
from tests.factories import UserFactory


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue

    name = factory.Sequence(lambda n: f"queue {n}")
    kind = "pairwise"
    instructions = "Pick the **better** answer."
    labels_per_item = 3
    priority = Priority.FIFO


def pairwise(n: int, *, prefix: str = "") -> list[NewItem]:
    return [
        NewItem(
            payload=PairwisePayload(
                prompt=f"{prefix}prompt {i}",
                response_a=f"{prefix}answer A{i}",
                response_b=f"{prefix}answer B{i}",
            ),
            external_id=f"{prefix}{i}",
        )
        for i in range(n)
    ]


def pairwise_gold(n: int, choice: str = "a") -> list[NewItem]:
    return [
        NewItem(
            payload=PairwisePayload(prompt=f"question {i}", response_a="good", response_b="bad"),
            gold=ChoiceValue(choice=choice),  # type: ignore[arg-type]
            external_id=f"g-{i}",
        )
        for i in range(n)
    ]


def likert(n: int) -> list[NewItem]:
    return [NewItem(payload=LikertPayload(text=f"text {i}")) for i in range(n)]


def likert_gold(n: int, rating: int) -> list[NewItem]:
    return [
        NewItem(payload=LikertPayload(text=f"text g{i}"), gold=RatingValue(rating=rating))
        for i in range(n)
    ]


def make_queue(
    *, members: Iterable[Any] = (), items: list[NewItem] | None = None, **fields: Any
) -> Queue:
    queue = cast(Queue, QueueFactory(**fields))
    queue_members_set(queue=queue, users=members)
    if items:
        queue_items_create(queue=queue, items=items)
    return queue


# Three annotators, three items, k = 3. Item 1 ends in a three-way split (a tie).
VOTES = {
    "ann-x": ["a", "a", "b"],
    "ann-y": ["a", "b", "b"],
    "ann-z": ["b", "tie", "b"],
}


def labelled_queue(*, gold=False, **fields):
    people = [UserFactory(username=name) for name in VOTES]
    items = [
        NewItem(
            payload=PairwisePayload(
                prompt=f"Q{i}",
                response_a=f"A{i}",
                response_b=f"B{i}",
                system="sys" if i == 0 else "",
            ),
            external_id=f"x{i}",
        )
        for i in range(3)
    ]
    queue = make_queue(name="prefs", members=people, items=items, labels_per_item=3, **fields)
    if gold:
        queue_items_create(queue=queue, items=pairwise_gold(1, "a"))
        queue.gold_rate = 0.25
        queue.save()
    for person in people:
        votes = iter(VOTES[person.username])
        while (lease := queue_item_claim(queue=queue, annotator=person)) is not None:
            # The gold item: x and y get it right, z does not.
            value = (
                ("b" if person.username == "ann-z" else "a") if lease.item.is_gold else next(votes)
            )
            label_submit(
                assignment_id=lease.pk,
                annotator=person,
                value={"choice": value},
                time_spent_ms=2000,
                client_request_id=uuid.uuid4(),
            )
    return queue, people


def export(queue, **spec_fields) -> bytes:
    out = io.BytesIO()
    export_write(export_plan(ExportSpec(queues=[queue.pk], **spec_fields)), out)
    return out.getvalue()


def jsonl(data: bytes) -> list[dict]:
    # JSONL's lines end at "\n" only: str.splitlines() would also split at a raw U+2028.
    return [json.loads(line) for line in data.split(b"\n") if line]
