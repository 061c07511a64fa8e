"""Pure pieces of a training run's evaluation (rewards/training.py)."""

from __future__ import annotations

import pytest


def test_length_bias_of_a_reward_model_counts_its_errors_towards_the_longer():
    import numpy as np

    from rewards.data import Pair
    from rewards.training import length_bias

    def pair(chosen: str, rejected: str) -> Pair:
        return Pair(group="g", label_ids=(1,), prompt="p", chosen=chosen, rejected=rejected)

    # The labels chose the shorter answer each time; a scorer that prefers length gets all
    # four wrong by preferring the longer.
    pairs = [pair("short", "a much longer answer " * k) for k in range(1, 5)]
    biased = length_bias(pairs, np.array([0.3, 0.2, 0.1, 0.05]))
    assert biased["length_wrong_pairs"] == 4 and biased["length_wrong_longer"] == 4
    assert biased["length_rho"] == pytest.approx(1.0)  # more length, more score
    fair = length_bias(pairs, np.array([0.9, 0.8, 0.95, 0.7]))
    assert fair["length_wrong_pairs"] == 0
