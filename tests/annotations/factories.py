"""Factories and small builders for annotations tests (kept here, beside the tests, so the
shared tests/factories.py stays free for the other apps)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import factory

from annotations.kinds import ChoiceValue, LikertPayload, PairwisePayload, RatingValue
from annotations.models import Priority, Queue
from annotations.services import NewItem, queue_items_create, queue_members_set


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
