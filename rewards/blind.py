"""Blind pairwise human comparisons: one mechanism for every "is X better than Y?" that
people answer in a rating queue without knowing which side is X.

A policy run against its parent (rewards/policy.py) and best-of-n against best-of-1 for an
over-optimisation experiment's human gold (rewards/human_gold.py) both build their pairs,
draw their sides, and hand them here: the queue, its items and the item → side map are made
in the caller's transaction, and the tally reads the queue's labels back the same way for
both. The side of X is kept by the caller's row, never on the item, so the judge's page
carries two responses and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from django.contrib.auth.models import User

from annotations.kinds import PairwisePayload
from annotations.models import Item, Label, Queue
from annotations.services import NewItem, queue_items_create, queue_members_set, queue_save
from core.stats import Share

Side = Literal["a", "b"]
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class BlindPair:
    """X (the response whose win rate is measured) against Y on one prompt; `side` is where
    X goes. `external_id` must say nothing about which is which."""

    prompt: str
    x: str
    y: str
    side: Side
    external_id: str


@dataclass(frozen=True)
class BlindTally:
    """X's wins among the decisive labels (A or B; ties and both-bad are counted apart),
    with the Wilson interval of core.stats."""

    wins: Share
    ties: int
    both_bad: int


def blind_queue_create(
    *, name: str, instructions: str, pairs: Sequence[BlindPair], members: Sequence[User],
    user: User | None,
) -> tuple[Queue, dict[int, Side]]:  # fmt: skip
    """A pairwise queue of the pairs, X on its drawn side: (queue, item id → X's side).
    Runs inside the caller's transaction (the caller stores the map in the same one)."""
    items = []
    for pair in pairs:
        a, b = (pair.x, pair.y) if pair.side == "a" else (pair.y, pair.x)
        payload = PairwisePayload(prompt=pair.prompt, response_a=a, response_b=b)
        items.append(NewItem(payload=payload, external_id=pair.external_id))
    queue = queue_save(
        queue=Queue(name=name[:200], kind="pairwise", labels_per_item=1,
                    instructions=instructions),
        user=user,
    )  # fmt: skip
    queue_members_set(queue=queue, users=members)
    queue_items_create(queue=queue, items=items)
    ids = dict(Item.objects.filter(queue=queue).values_list("external_id", "pk"))
    return queue, {ids[pair.external_id]: pair.side for pair in pairs}


def blind_tally(
    *, queue_id: int, x_sides: dict[int, Side], group: Callable[[int], K]
) -> dict[K, BlindTally]:
    """X's wins per group of items (`group(item id)`, e.g. the n of best-of-n; a constant
    for one overall figure), over the A/B labels of the queue. Items not in `x_sides` are
    not counted."""
    counts: dict[K, list[int]] = {}
    for item_id, value in Label.objects.filter(queue=queue_id).values_list("item_id", "value"):
        if item_id not in x_sides:
            continue
        row = counts.setdefault(group(item_id), [0, 0, 0, 0])  # wins, decisive, ties, both bad
        choice = value.get("choice")
        if choice in ("a", "b"):
            row[1] += 1
            row[0] += choice == x_sides[item_id]
        elif choice == "tie":
            row[2] += 1
        elif choice == "both_bad":
            row[3] += 1
    return {key: BlindTally(Share(w, d), t, bb) for key, (w, d, t, bb) in counts.items()}
