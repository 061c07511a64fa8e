"""rewards/ml.py: full training in either precision it offers."""

import pytest
import torch

from rewards import ml
from rewards.schemas import Hyperparameters
from tests.rewards.factories import KIND, RUDE, TOPICS


def _pairs(topics: list[str]) -> tuple[list[str], list[str], list[str]]:
    prompts = [f"Explain {topic}." for topic in topics]
    chosen = [KIND[n % len(KIND)].format(t=topic) for n, topic in enumerate(topics)]
    rejected = [RUDE[n % len(RUDE)].format(t=topic) for n, topic in enumerate(topics)]
    return prompts, chosen, rejected


@pytest.mark.parametrize("compute", [torch.float32, torch.bfloat16])
def test_full_training_learns_in_either_precision_and_keeps_float32_weights(compute):
    loaded = ml.load(ml.bundled_base(), cached=False)
    hp = Hyperparameters(max_length=64, learning_rate=1e-4, epochs=2, batch_size=8,
                         weight_decay=0.0, seed=0)  # fmt: skip
    curve = ml.full_train(loaded, *_pairs(TOPICS[:24]), hp, lambda *_: None, compute=compute)

    assert [step for step, _ in curve] == list(range(1, 7))  # 3 batches, 2 epochs
    assert all(param.dtype == torch.float32 for param in loaded.model.parameters())
    prompts, chosen, rejected = _pairs(TOPICS[24:])
    right = zip(ml.score(loaded, prompts, chosen, 64), ml.score(loaded, prompts, rejected, 64),
                strict=True)  # fmt: skip
    assert sum(c > r for c, r in right) >= 7  # of 8 held-out topics
