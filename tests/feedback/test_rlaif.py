"""RLAIF: reward models on human, AI or both labels; the gate always reads human pairs."""

from __future__ import annotations

from typing import Any, cast

import pytest

import llm.generation
from feedback.labelling import labelling_run_execute
from feedback.models import ModelAnnotator
from feedback.services import constitution_create, labelling_run_start, model_annotator_save
from rewards.data import training_data
from rewards.models import LabelSource, Status
from tests.factories import ModelConfigFactory
from tests.feedback.fakes import PicksByWord
from tests.rewards.factories import (
    add_items,
    label_all,
    preference_items,
    preference_queue,
    reward_model_for,
    run_now,
)

KIND_WORDS = ("Happy to help", "Great question", "Thanks for asking")


@pytest.fixture
def labelled(annotator, researcher):
    """40 pairs, each labelled carefully by a person."""
    queue = preference_queue(members=[annotator], name="kindness")
    label_all(queue, annotator, add_items(queue, preference_items(40, seed=7)))
    return queue


def _ai_labels(queue, researcher, monkeypatch, *, flip: bool) -> None:
    monkeypatch.setattr(llm.generation, "backend_for",
                        lambda config: PicksByWord(KIND_WORDS, flip=flip))  # fmt: skip
    constitution = constitution_create(
        name=f"kind {flip}", principles=["Prefer the kinder response."], user=researcher
    )
    annotator = model_annotator_save(
        annotator=ModelAnnotator(
            queue=queue,
            name=f"bot {flip}",
            model_config=cast(Any, ModelConfigFactory()),
            constitution=constitution,
        ),
        user=researcher,
    )  # fmt: skip
    run = labelling_run_start(annotator=annotator, user=researcher)
    labelling_run_execute(run_id=run.pk)


def test_an_ai_only_reward_model_trains_on_ai_pairs_and_holds_out_human_ones(
    labelled, researcher, monkeypatch
):
    _ai_labels(labelled, researcher, monkeypatch, flip=False)
    human = training_data(reward_model=reward_model_for(labelled, name="human"))
    ai_only = training_data(
        reward_model=reward_model_for(labelled, name="ai", label_source=LabelSource.AI)
    )
    both = training_data(reward_model=reward_model_for(
        labelled, name="both", label_source=LabelSource.BOTH, ai_weight=0.5))  # fmt: skip
    assert {p.source for p in ai_only.train} == {"ai"}
    assert {p.source for p in ai_only.heldout} == {"human"}
    # The same human held-out pairs whatever it trains on; no AI pair of a held-out item.
    assert [p.group for p in ai_only.heldout] == [p.group for p in human.heldout]
    held = {p.group for p in ai_only.heldout}
    assert not held & {p.group for p in ai_only.train}
    assert len(ai_only.train) == len(human.train) == 40 - len(held)
    assert len(both.train) == 2 * len(human.train)
    assert {p.weight for p in both.train if p.source == "ai"} == {0.5}


@pytest.mark.parametrize(("flip", "passes"), [(False, True), (True, False)])
def test_an_ai_only_reward_model_is_gated_on_human_held_out_pairs(
    labelled, researcher, monkeypatch, flip, passes
):
    """AI labels that contradict people train a model that orders people's held-out pairs
    the wrong way: the gate (on human pairs) rejects it. Faithful AI labels pass."""
    _ai_labels(labelled, researcher, monkeypatch, flip=flip)
    reward_model = reward_model_for(labelled, name="rlaif", label_source=LabelSource.AI)
    version = run_now(reward_model)
    metrics = version.typed_metrics
    assert metrics.train_ai_pairs == metrics.train_pairs == 28
    assert metrics.heldout_pairs == 12  # 30 % of the 40 human-labelled items
    if passes:
        assert version.status == Status.ACTIVE, version.reason
        assert metrics.heldout_accuracy > 0.8
    else:
        assert version.status == Status.REJECTED
        assert metrics.heldout_accuracy < 0.5
