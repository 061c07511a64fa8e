from __future__ import annotations

from typing import Any, cast

import pytest

from annotations.kinds import ChoiceValue, PairwisePayload
from annotations.models import Queue
from annotations.services import NewItem, queue_items_create
from experiments.models import Assistance
from experiments.services import ArmSpec, experiment_create
from llm.backends.base import Completion, Usage
from tests.factories import ModelConfigFactory

# Gold of the question set's four items, in item order.
GOLD = ["a", "b", "a", "b"]
CRITIQUE = "<script>alert(1)</script> Answer B is CRITIQUE-MARKER wrong"


def question_set(name: str = "question set", gold: bool = True) -> Queue:
    queue = Queue.objects.create(name=name, kind="pairwise", labels_per_item=3)
    items = [
        NewItem(
            payload=PairwisePayload(
                prompt=f"Question {n}?", response_a=f"answer A{n}", response_b=f"answer B{n}"
            ),
            gold=ChoiceValue(choice=cast(Any, choice)) if gold else None,
            external_id=f"q{n}",
        )
        for n, choice in enumerate(GOLD)
    ]
    queue_items_create(queue=queue, items=items)
    return queue


def make_experiment(
    *,
    researcher: Any = None,
    assistance: str = Assistance.CRITIQUE,
    time_limit_s: int | None = None,
    seed: int = 7,
    slug: str = "study",
    expert_gold: bool = True,
) -> Any:
    config = ModelConfigFactory() if assistance != Assistance.NONE else None
    return experiment_create(
        name=f"experiment {slug}",
        slug=slug,
        question_set=question_set(f"set {slug}"),
        arms=[
            ArmSpec(name="Control arm", time_limit_s=time_limit_s),
            ArmSpec(
                name="Helped arm",
                assistance=assistance,
                model_config=cast(Any, config),
                time_limit_s=time_limit_s,
            ),
        ],  # fmt: skip
        consent="# Consent\n\nYou agree to **take part**.",
        instructions="Pick the better answer.",
        completion_code="C0DE42",
        completion_url="https://app.prolific.com/submissions/complete",
        seed=seed,
        expert_gold=expert_gold,
        user=researcher,
    )


class FakeBackend:
    """Answers every chat with a fixed critique or suggestion; counts its batched calls."""

    def __init__(self, text: str = CRITIQUE) -> None:
        self.text = text
        self.batches: list[int] = []

    def generate_batch(self, chats: Any, *, params: Any) -> list[Completion]:
        self.batches.append(len(chats))
        usage = Usage(prompt_tokens=1, completion_tokens=1, time_to_first_token_s=0.0, total_s=0.0)
        return [Completion(text=self.text, usage=usage, finish_reason="stop") for _ in chats]


@pytest.fixture
def fake_backend(monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    backend = FakeBackend()
    monkeypatch.setattr("experiments.assistance.backend_for", lambda config: backend)
    return backend
