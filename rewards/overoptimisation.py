"""Best-of-n over-optimisation, as Gao, Schulman & Hilton (2022, "Scaling Laws for Reward
Model Overoptimization") measured it: pure functions, numbers in and numbers out.

For one prompt with N samples, each scored by a proxy reward model and a gold scorer:

- `best_of_n_expected` is the unbiased order-statistics estimator of E[score of the sample
  the proxy ranks best among n drawn without replacement from the N]. Sorted by proxy score,
  the i-th lowest (1-based) is the best of a random n-subset with probability
  C(i−1, n−1) / C(N, n); the estimate is the weighted sum of the scores (proxy scores for the
  proxy curve, the same samples' gold scores for the gold curve). Every one of the C(N, n)
  subsets counts once, so it uses all N samples, not N/n disjoint groups.
- `kl_best_of_n(n) = log n − (n − 1)/n`, the KL divergence of best-of-n from the policy (an
  upper bound, exact for continuous scores; Stiennon et al. 2020, Gao et al. 2022).
- Scores are read relative to n = 1 (the policy's own mean), so both curves start at 0, and
  fitted with d = √KL: gold = d(α − β·d) and proxy = α′·d, least squares with no intercept.
- Intervals: a percentile bootstrap over prompts (prompts are the independent unit: the N
  samples of one prompt share it), refitting every resample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MAX_N = 64
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
METHOD = "95 % percentile bootstrap over prompts"


def n_grid(big_n: int) -> list[int]:
    """n = 1, 2, 4 … up to N (N itself added when it is not a power of two)."""
    if big_n < 1:
        raise ValueError("N must be at least 1")
    grid = [1]
    while grid[-1] * 2 <= big_n:
        grid.append(grid[-1] * 2)
    if grid[-1] != big_n:
        grid.append(big_n)
    return grid


def kl_best_of_n(n: int) -> float:
    """KL(best-of-n ‖ policy) = log n − (n − 1)/n nats."""
    if n < 1:
        raise ValueError("n must be at least 1")
    return math.log(n) - (n - 1) / n


def n_for_kl(kl: float) -> float:
    """The (real) n whose best-of-n KL is `kl`: kl_best_of_n is increasing, so bisect."""
    if kl <= 0:
        return 1.0
    lo, hi = 1.0, 2.0
    while math.log(hi) - (hi - 1) / hi < kl:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if math.log(mid) - (mid - 1) / mid < kl:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def best_of_n_weights(big_n: int, n: int) -> np.ndarray:
    """P(the i-th lowest of N is the best of a random n-subset) = C(i−1, n−1) / C(N, n),
    for i = 1..N, computed in log space."""
    import numpy as np

    if not 1 <= n <= big_n:
        raise ValueError(f"n must be between 1 and N={big_n}, got {n}")
    ranks = np.arange(1, big_n + 1)
    weights = np.zeros(big_n)
    usable = ranks >= n
    log_total = math.lgamma(big_n + 1) - math.lgamma(n + 1) - math.lgamma(big_n - n + 1)
    for i in ranks[usable]:
        log_c = math.lgamma(i) - math.lgamma(n) - math.lgamma(i - n + 1)
        weights[i - 1] = math.exp(log_c - log_total)
    return weights


def best_of_n_expected(
    proxy: Sequence[float], gold: Sequence[float], grid: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(E[proxy score of best-of-n], E[gold score of the proxy's best-of-n]) for each n of
    `grid`, over one prompt's N samples. Ties in proxy score are broken by sample order."""
    import numpy as np

    p = np.asarray(proxy, dtype=float)
    g = np.asarray(gold, dtype=float)
    if p.shape != g.shape or p.ndim != 1:
        raise ValueError("proxy and gold need one score per sample each")
    order = np.argsort(p, kind="stable")
    p_sorted, g_sorted = p[order], g[order]
    weights = np.stack([best_of_n_weights(len(p), n) for n in grid])
    return weights @ p_sorted, weights @ g_sorted


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class CurvePoint:
    n: int
    kl: float
    d: float  # √KL
    proxy: Interval  # relative to n = 1
    gold: Interval | None  # None: the gold is people's (rewards/human_gold.py), not scores


@dataclass(frozen=True)
class Fit:
    alpha: Interval | None  # gold = d(α − β d); None without gold scores
    beta: Interval | None
    alpha_proxy: Interval  # proxy = α′ d
    # Where the fitted gold curve peaks: d* = α / 2β (None when β ≤ 0: no peak in sight).
    peak_d: Interval | None
    peak_n: float | None  # the n whose KL is d*²
    observed_peak_n: int | None  # the n of the grid with the highest gold estimate


@dataclass(frozen=True)
class Analysis:
    prompts: int
    samples_per_prompt: int
    points: list[CurvePoint]
    fit: Fit
    resamples: int
    method: str = METHOD


def _fit(d: np.ndarray, proxy: np.ndarray, gold: np.ndarray) -> tuple[float, float, float]:
    """Least squares, no intercept: gold ≈ α d − β d², proxy ≈ α′ d."""
    import numpy as np

    design = np.stack([d, -(d**2)], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(design, gold, rcond=None)
    alpha_proxy = float(d @ proxy / (d @ d)) if d @ d > 0 else 0.0
    return float(alpha), float(beta), alpha_proxy


def fitted_gold(d: float, alpha: float, beta: float) -> float:
    return d * (alpha - beta * d)


def _curves(per_prompt: np.ndarray) -> np.ndarray:
    """Mean over prompts, relative to n = 1: shape (grid,)."""

    mean = per_prompt.mean(axis=0)
    return mean - mean[0]


def percentile_interval(value: float, samples: np.ndarray) -> Interval:
    """`value` with the 95 % percentile interval of its bootstrap `samples` (shared with the
    human gold's fit, rewards/human_gold.py)."""
    import numpy as np

    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(value, float(low), float(high))


def analyse(
    proxy: Sequence[Sequence[float]],
    gold: Sequence[Sequence[float]] | None,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Analysis:
    """The curves, the fit and their intervals from proxy[prompt][sample] and
    gold[prompt][sample] (every prompt with the same N ≥ 2 samples). Gold None (people are
    the gold, rewards/human_gold.py): the proxy curve and its fit only, every gold field
    None."""
    import numpy as np

    if gold is None:
        # The gold arithmetic runs on the proxy's numbers to keep one code path; none of
        # it is kept.
        return _without_gold(analyse(proxy, proxy, resamples=resamples, seed=seed))
    if not proxy:
        raise ValueError("no prompts to analyse")
    big_n = len(proxy[0])
    if big_n < 2 or any(len(row) != big_n for row in [*proxy, *gold]):
        raise ValueError("every prompt needs the same number (at least 2) of samples")
    grid = n_grid(big_n)
    kl = np.array([kl_best_of_n(n) for n in grid])
    d = np.sqrt(kl)
    pairs = [best_of_n_expected(p, g, grid) for p, g in zip(proxy, gold, strict=True)]
    proxy_pp = np.stack([p for p, _ in pairs])  # prompts × grid
    gold_pp = np.stack([g for _, g in pairs])
    proxy_curve, gold_curve = _curves(proxy_pp), _curves(gold_pp)
    alpha, beta, alpha_proxy = _fit(d, proxy_curve, gold_curve)

    rng = np.random.default_rng(seed)
    prompts = len(proxy)
    boot_proxy = np.empty((resamples, len(grid)))
    boot_gold = np.empty((resamples, len(grid)))
    boot_fit = np.empty((resamples, 3))
    for r in range(resamples):
        rows = rng.integers(0, prompts, prompts)
        boot_proxy[r] = _curves(proxy_pp[rows])
        boot_gold[r] = _curves(gold_pp[rows])
        boot_fit[r] = _fit(d, boot_proxy[r], boot_gold[r])

    points = [
        CurvePoint(n, float(kl[i]), float(d[i]),
                   percentile_interval(float(proxy_curve[i]), boot_proxy[:, i]),
                   percentile_interval(float(gold_curve[i]), boot_gold[:, i]))
        for i, n in enumerate(grid)
    ]  # fmt: skip
    peak_d = peak_n = None
    if beta > 0:
        peaked = boot_fit[:, 1] > 0
        # Resamples whose curve does not turn down have no peak; the interval is over those
        # that do (their share is what `peaked` counts).
        peak_samples = boot_fit[peaked, 0] / (2 * boot_fit[peaked, 1])
        d_star = alpha / (2 * beta)
        peak_d = percentile_interval(
            d_star, peak_samples if len(peak_samples) else np.array([d_star])
        )
        peak_n = n_for_kl(max(d_star, 0.0) ** 2)
    fit = Fit(
        alpha=percentile_interval(alpha, boot_fit[:, 0]),
        beta=percentile_interval(beta, boot_fit[:, 1]),
        alpha_proxy=percentile_interval(alpha_proxy, boot_fit[:, 2]),
        peak_d=peak_d,
        peak_n=peak_n,
        observed_peak_n=grid[int(np.argmax(gold_curve))],
    )
    return Analysis(prompts, big_n, points, fit, resamples)


def _without_gold(analysis: Analysis) -> Analysis:
    from dataclasses import replace

    return replace(
        analysis,
        points=[replace(p, gold=None) for p in analysis.points],
        fit=replace(analysis.fit, alpha=None, beta=None, peak_d=None, peak_n=None,
                    observed_peak_n=None),
    )  # fmt: skip
