"""The best-of-n estimator, the KL axis and the fit, against closed forms and brute force,
with deterministic synthetic scorers (no model)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from rewards.overoptimisation import (
    analyse,
    best_of_n_expected,
    best_of_n_weights,
    fitted_gold,
    kl_best_of_n,
    n_for_kl,
    n_grid,
)


def test_kl_of_best_of_n_is_log_n_minus_n_minus_one_over_n():
    assert kl_best_of_n(1) == 0.0
    assert kl_best_of_n(2) == pytest.approx(math.log(2) - 0.5)
    assert kl_best_of_n(64) == pytest.approx(math.log(64) - 63 / 64)
    # Increasing, and n_for_kl inverts it.
    kls = [kl_best_of_n(n) for n in range(1, 65)]
    assert kls == sorted(kls)
    for n in (2, 5, 17, 64):
        assert n_for_kl(kl_best_of_n(n)) == pytest.approx(n, rel=1e-6)


def test_grid_is_powers_of_two_up_to_n():
    assert n_grid(64) == [1, 2, 4, 8, 16, 32, 64]
    assert n_grid(12) == [1, 2, 4, 8, 12]
    assert n_grid(2) == [1, 2]


@pytest.mark.parametrize("big_n", [2, 7, 64])
def test_weights_are_a_distribution(big_n):
    for n in n_grid(big_n):
        weights = best_of_n_weights(big_n, n)
        assert weights.sum() == pytest.approx(1.0)
        assert (weights[: n - 1] == 0).all()  # the n−1 lowest can never be the best of n


def test_expected_maximum_of_ranks_matches_the_closed_form():
    # Scores 1..N: the best of n drawn without replacement has mean n(N+1)/(n+1).
    big_n = 64
    scores = list(range(1, big_n + 1))
    random.Random(3).shuffle(scores)
    grid = n_grid(big_n)
    proxy, gold = best_of_n_expected(scores, [-s for s in scores], grid)
    for i, n in enumerate(grid):
        assert proxy[i] == pytest.approx(n * (big_n + 1) / (n + 1))
        assert gold[i] == pytest.approx(-n * (big_n + 1) / (n + 1))  # gold read on the same pick


def test_estimator_equals_the_average_over_every_subset():
    rng = random.Random(7)
    proxy = [rng.gauss(0, 1) for _ in range(8)]
    gold = [rng.gauss(0, 1) for _ in range(8)]
    grid = [1, 2, 3, 5, 8]
    est_proxy, est_gold = best_of_n_expected(proxy, gold, grid)
    for i, n in enumerate(grid):
        subsets = list(itertools.combinations(range(8), n))
        best = [max(s, key=lambda j: proxy[j]) for s in subsets]
        assert est_proxy[i] == pytest.approx(sum(proxy[j] for j in best) / len(subsets))
        assert est_gold[i] == pytest.approx(sum(gold[j] for j in best) / len(subsets))


def test_fit_recovers_a_rise_and_fall_and_its_peak():
    """A synthetic gold that follows the proxy up to a point, then is hurt by it: the
    fitted gold curve rises and turns down, the proxy's keeps rising, the peak is inside."""
    rng = random.Random(11)
    proxy, gold = [], []
    for _ in range(40):
        p = sorted(rng.gauss(0, 1) for _ in range(32))
        rng.shuffle(p)
        proxy.append(p)
        gold.append([x - 0.6 * max(0.0, x) ** 2 for x in p])  # over-optimised above 0
    result = analyse(proxy, gold, resamples=200)
    fit = result.fit
    assert fit.alpha_proxy.value > 0 and fit.alpha_proxy.low > 0
    assert fit.beta.value > 0 and fit.beta.low > 0
    assert fit.peak_n is not None and 1 < fit.peak_n < 32
    assert fit.observed_peak_n < 32
    gold_curve = [p.gold.value for p in result.points]
    assert gold_curve[0] == 0.0 and max(gold_curve) > 0 and gold_curve[-1] < max(gold_curve)
    for point in result.points[1:]:
        assert point.proxy.low <= point.proxy.value <= point.proxy.high
    # The fitted curve's maximum is at d* = α/2β.
    d_star = fit.alpha.value / (2 * fit.beta.value)
    assert fit.peak_d is not None and fit.peak_d.value == pytest.approx(d_star)
    assert fitted_gold(d_star, fit.alpha.value, fit.beta.value) >= fitted_gold(
        d_star * 1.1, fit.alpha.value, fit.beta.value
    )
    assert fit.peak_n == pytest.approx(n_for_kl(d_star**2))


def test_a_gold_equal_to_the_proxy_never_peaks():
    rng = random.Random(5)
    proxy = [[rng.gauss(0, 1) for _ in range(16)] for _ in range(20)]
    result = analyse(proxy, proxy, resamples=100)
    assert [p.gold.value for p in result.points] == [p.proxy.value for p in result.points]
    assert result.fit.observed_peak_n == 16


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        analyse([], [])
    with pytest.raises(ValueError):
        analyse([[1.0, 2.0], [1.0]], [[1.0, 2.0], [1.0]])
