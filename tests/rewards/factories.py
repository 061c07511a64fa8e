"""Learnable preference data: the chosen response carries a property the rejected one lacks.

Every response answers its prompt with the same facts; the preferred one also explains
itself kindly and the other is curt and rude. A frozen MiniLM separates the two, so a reward
model trained on a few dozen such labels generalises to held-out prompts.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

from annotations.kinds import PairwisePayload
from annotations.models import Priority, Queue
from annotations.services import NewItem, label_submit, queue_item_claim, queue_items_create
from debate.models import DebateStatus, Speech, SpeechStatus
from rewards.models import RewardModel, RewardVersion, Speed, Status, Trigger
from rewards.services import MARKER, reward_model_save, reward_training_start
from rewards.training import reward_training_run
from tests.annotations.factories import make_queue
from tests.factories import DebateFactory

TOPICS = [
    "boiling water", "the tides", "rainbows", "photosynthesis", "volcanoes", "magnets",
    "bread rising", "thunder", "snowflakes", "the seasons", "rust", "echoes", "bees",
    "compost", "bicycles", "the moon's phases", "ice floating", "fog", "earthquakes",
    "lightning", "sourdough", "coral reefs", "sunsets", "hiccups", "yawning", "wind",
    "glaciers", "caterpillars", "fireflies", "soap bubbles", "tree rings", "deserts",
]  # fmt: skip
KIND = [
    "Happy to help! Here is a clear explanation of {t}, step by step, with an example.",
    "Great question! I'll walk you through how {t} works and why, gently and clearly.",
    "Thanks for asking. Let me explain {t} carefully, with a friendly everyday example.",
]
RUDE = [
    "Ugh, {t}? Look it up yourself, this is a stupid question.",
    "Whatever. {t} is obvious, stop wasting my time.",
    "No. {t} is not worth explaining to you. Go away.",
]


def preference_items(n: int, *, seed: int = 0, start: int = 0) -> list[tuple[NewItem, str]]:
    """(item, the side a careful annotator picks) — the good answer on a random side."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        topic = f"{TOPICS[i % len(TOPICS)]} (case {i})"
        good = rng.choice(KIND).format(t=topic)
        bad = rng.choice(RUDE).format(t=topic)
        side = rng.choice("ab")
        a, b = (good, bad) if side == "a" else (bad, good)
        payload = PairwisePayload(prompt=f"Explain {topic}.", response_a=a, response_b=b)
        out.append((NewItem(payload=payload, external_id=f"p{i}"), side))
    return out


def preference_queue(*, members: list[Any], priority: str = Priority.FIFO, **fields: Any) -> Queue:
    return make_queue(members=members, kind="pairwise", priority=priority, labels_per_item=1,
                      **fields)  # fmt: skip


def add_items(queue: Queue, items: list[tuple[NewItem, str]]) -> dict[str, str]:
    """Add items; returns external id → the side a careful annotator picks."""
    queue_items_create(queue=queue, items=[item for item, _ in items])
    return {item.external_id: side for item, side in items}


def label_all(
    queue: Queue, annotator: Any, answers: dict[str, str], *, flip: bool = False, limit: int = 0
) -> int:
    """Label items through the real claim and submit services, as an annotator would:
    the careful answer, or (flip=True) always the other one. Returns labels written."""
    done = 0
    while (lease := queue_item_claim(queue=queue, annotator=annotator)) is not None:
        side = answers[lease.item.external_id]
        if flip:
            side = "b" if side == "a" else "a"
        label_submit(assignment_id=lease.pk, annotator=annotator, value={"choice": side},
                     time_spent_ms=1000, client_request_id=uuid.uuid4())  # fmt: skip
        done += 1
        if limit and done >= limit:
            break
    return done


def reward_model_for(queue: Queue, **fields: Any) -> RewardModel:
    fields.setdefault("name", f"rm for {queue.name}")
    fields.setdefault("fast_every", 60)
    fields.setdefault("full_every_hours", 0)
    fields.setdefault("heldout_percent", 30)
    return reward_model_save(reward_model=RewardModel(**fields), queues=[queue], user=None)


AMBIGUOUS = "Thanks for asking! Here is a friendly, careful explanation of {t}."


def ambiguous_items(n: int, *, start: int = 1000) -> list[tuple[NewItem, str]]:
    """Both responses carry the property: a reward model should find these closest to 50 %."""
    out = []
    for i in range(start, start + n):
        topic = f"{TOPICS[i % len(TOPICS)]} (case {i})"
        a = KIND[i % len(KIND)].format(t=topic)
        b = AMBIGUOUS.format(t=topic)
        payload = PairwisePayload(prompt=f"Explain {topic}.", response_a=a, response_b=b)
        out.append((NewItem(payload=payload, external_id=f"amb{i}"), "a"))
    return out


def label_some(
    queue: Queue, annotator: Any, answers: dict[str, str], *, take: Any, flip: Any = False
) -> int:
    """Label the items `take(item)` accepts (skipping the rest, for this annotator); `flip`
    (a bool, or a function of the item) picks the worse answer."""
    from annotations.services import assignment_skip

    done = 0
    while (lease := queue_item_claim(queue=queue, annotator=annotator)) is not None:
        if not take(lease.item):
            assignment_skip(assignment_id=lease.pk, annotator=annotator)
            continue
        side = answers[lease.item.external_id]
        if flip(lease.item) if callable(flip) else flip:
            side = "b" if side == "a" else "a"
        label_submit(assignment_id=lease.pk, annotator=annotator, value={"choice": side},
                     time_spent_ms=1000, client_request_id=uuid.uuid4())  # fmt: skip
        done += 1
    return done


def trained_model(annotator, n=60):
    queue = preference_queue(members=[annotator])
    label_all(queue, annotator, add_items(queue, preference_items(n, seed=5)))
    return reward_model_for(queue)


def run_now(reward_model, speed=Speed.FAST):
    with mock.patch("rewards.tasks.reward_training_task.delay"):
        version = reward_training_start(reward_model=reward_model, speed=speed,
                                        trigger=Trigger.MANUAL)  # fmt: skip
    assert version is not None
    reward_training_run(version_id=version.pk)
    version.refresh_from_db()
    return version


# A debate the reward model above reads as side A kind, side B rude.
DEBATE_KIND = "Happy to help! Here is a clear, careful explanation of the tides, with an example."
DEBATE_RUDE = "Ugh, the tides? Look it up yourself, this is a stupid question."


def over_debate(*, judge, status=DebateStatus.JUDGED, correct_side="a", **fields) -> Any:
    """A debate that is over: side A answers kindly, side B rudely, one speech each."""
    fields = {
        "question": "Explain the tides.",
        "answer_a": DEBATE_KIND,
        "answer_b": DEBATE_RUDE,
        **fields,
    }
    debate: Any = DebateFactory(judge=judge, status=status, current_round=1,
                           correct_side=correct_side, **fields)  # fmt: skip
    for side, text in (("a", "Kindly: the moon pulls the sea."), ("b", "Whatever. Moon.")):
        Speech.objects.create(debate=debate, round=1, side=side, status=SpeechStatus.DONE,
                              text=text)  # fmt: skip
    return debate


def active_version(reward_model: RewardModel, number: int = 1) -> RewardVersion:
    """An active version row without a checkpoint: enough for what pages and rules read."""
    version = RewardVersion.objects.create(
        reward_model=reward_model, number=number, speed=Speed.FAST, trigger=Trigger.MANUAL,
        status=Status.ACTIVE,
    )  # fmt: skip
    RewardModel.objects.filter(pk=reward_model.pk).update(active_version=version)
    return version


def scorable(queue: Queue, folder: Path, name: str = "rm") -> RewardModel:
    """A reward model whose active version has a checkpoint marker under `folder`: enough for
    a policy run to start with it (rewards.policy), not to score."""
    reward_model = reward_model_for(queue, name=name)
    version = active_version(reward_model)
    checkpoint = folder / f"{name}-v1"
    checkpoint.mkdir()
    (checkpoint / MARKER).write_text("{}")
    version.artifact_path = str(checkpoint)
    version.save(update_fields=["artifact_path"])
    reward_model.refresh_from_db()
    return reward_model
