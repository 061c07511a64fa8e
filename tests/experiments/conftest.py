from __future__ import annotations

from typing import Any, cast

import pytest

import llm.generation
from annotations.kinds import ChoiceValue, PairwisePayload
from annotations.models import Queue
from annotations.services import NewItem, queue_items_create
from experiments.models import Arm, ArmProtocol, Assistance
from experiments.protocols import arm_transcripts_run
from experiments.services import ArmSpec, experiment_create
from llm.backends.base import Completion, Usage
from tests.debate.research_factories import BankQuestionFactory, QuestionBankFactory
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


# Question-bank experiments: arm names that must never reach a participant, and what each
# arm's model says (its config's name, so one arm's material is told from another's).
BANK_ARMS = {"direct": "Arm Zulu", "consultancy": "Arm Yankee", "debate": "Arm Xray"}


def said_by(config_name: str) -> str:
    return f"{config_name}-SAYS <script>alert(1)</script> read the <quote>green ink</quote>"


def bank(questions: int = 4) -> Any:
    found = QuestionBankFactory()
    BankQuestionFactory.create_batch(questions, bank=found)
    return found


def bank_experiment(
    *,
    researcher: Any = None,
    protocols: tuple[str, ...] = (ArmProtocol.DIRECT, ArmProtocol.CONSULTANCY, ArmProtocol.DEBATE),
    time_limit_s: int | None = None,
    slug: str = "bank-study",
    seed: int = 7,
    questions: int = 4,
) -> Any:
    """A question-bank experiment with one arm per protocol; consultancy's model config is
    named `consultant-model`, debate's `debater-model`."""
    configs: dict[str, Any] = {
        ArmProtocol.CONSULTANCY: ModelConfigFactory(name=f"consultant-model-{slug}"),
        ArmProtocol.DEBATE: ModelConfigFactory(name=f"debater-model-{slug}"),
    }
    return experiment_create(
        name=f"experiment {slug}",
        slug=slug,
        question_bank=bank(questions),
        arms=[
            ArmSpec(
                name=BANK_ARMS[protocol],
                protocol=protocol,
                model_config=configs.get(protocol),
                time_limit_s=time_limit_s,
            )  # type: ignore[call-overload]
            for protocol in protocols
        ],  # fmt: skip
        consent="# Consent\n\nYou agree to **take part**.",
        instructions="Judge each question.",
        completion_code="C0DE42",
        seed=seed,
        expert_gold=True,
        user=researcher,
    )


@pytest.fixture
def fake_debaters(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every debate-batch generation (llm.generation.backend_for): the config's fixed speech;
    records (config name, prompts in the call)."""
    calls: list[tuple[str, int]] = []

    class Recorded:
        def __init__(self, config: Any) -> None:
            self.config = config

        def generate_batch(self, prompts: Any, *, params: Any) -> list[Completion]:
            calls.append((self.config.name, len(prompts)))
            usage = Usage(prompt_tokens=1, completion_tokens=1, time_to_first_token_s=None,
                          total_s=0.0)  # fmt: skip
            text = said_by(self.config.name)
            return [Completion(text=text, usage=usage, finish_reason="stop") for _ in prompts]

    monkeypatch.setattr(llm.generation, "backend_for", Recorded)
    return calls


@pytest.fixture
def transcripts_sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The arms whose transcript job was enqueued (the task is not run)."""
    from experiments.tasks import arm_transcripts_task

    sent: list[int] = []
    monkeypatch.setattr(arm_transcripts_task, "delay", sent.append)
    return sent


def transcripts_ready(experiment: Any) -> None:
    """Run every consultancy and debate arm's transcript job, as a worker would."""
    for arm in Arm.objects.filter(experiment=experiment).order_by("position"):
        if arm.transcripts:
            arm_transcripts_run(arm_id=arm.pk)
