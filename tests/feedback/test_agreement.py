import random

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from feedback.agreement import (
    CHOICES,
    RATINGS,
    cohen_kappa,
    confusion_table,
    figure,
    kappa_interval,
)


@pytest.mark.parametrize("seed", range(5))
def test_kappa_matches_sklearn_on_choices(seed):
    rng = random.Random(seed)
    ai = [rng.choice(CHOICES) for _ in range(60)]
    people = [a if rng.random() < 0.6 else rng.choice(CHOICES) for a in ai]
    expected = cohen_kappa_score(ai, people, labels=CHOICES)
    assert cohen_kappa(ai, people, CHOICES, weighting=None) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_quadratic_kappa_matches_sklearn_on_ratings(seed):
    rng = random.Random(seed)
    ai = [rng.randint(1, 7) for _ in range(40)]
    people = [min(7, max(1, a + rng.choice([-2, -1, 0, 0, 1]))) for a in ai]
    expected = cohen_kappa_score(ai, people, labels=RATINGS, weights="quadratic")
    got = cohen_kappa(ai, people, RATINGS, weighting="quadratic")
    assert got == pytest.approx(expected, abs=1e-12)


def test_kappa_is_undefined_when_both_use_one_category():
    assert cohen_kappa(["a"] * 5, ["a"] * 5, CHOICES, weighting=None) is None
    assert cohen_kappa([], [], CHOICES, weighting=None) is None


def test_bootstrap_interval_brackets_kappa_and_is_repeatable():
    rng = random.Random(3)
    ai = [rng.choice("ab") for _ in range(80)]
    people = [a if rng.random() < 0.8 else rng.choice("ab") for a in ai]
    kappa = cohen_kappa(ai, people, CHOICES, weighting=None)
    low, high = kappa_interval(ai, people, CHOICES, weighting=None)
    assert low < kappa < high
    assert (low, high) == kappa_interval(ai, people, CHOICES, weighting=None)
    # More items, a narrower interval.
    low4, high4 = kappa_interval(ai * 4, people * 4, CHOICES, weighting=None)
    assert high4 - low4 < high - low


def test_confusion_rows_are_the_model_columns_the_reference():
    table = confusion_table(["a", "a", "b"], ["a", "b", "b"], CHOICES)
    assert table[0].tolist() == [1, 1, 0, 0]
    assert table[1].tolist() == [0, 1, 0, 0]
    assert np.sum(table) == 3


def test_figure_carries_raw_agreement_with_its_wilson_interval():
    found = figure("gold", [("a", "a"), ("b", "a"), ("a", "a")], CHOICES, CHOICES,
                   weighting=None)  # fmt: skip
    assert (found.agree.k, found.agree.n) == (2, 3)
    assert "Wilson" in found.agree.text
