"""Statistics of a policy run's report (pure functions, no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_METHOD = (
    "95 % percentile bootstrap over held-out prompts (2,000 resamples): each prompt's samples "
    "stay together, the prompt being the independent unit"
)


def mean_of_prompt_means(groups: Sequence[Sequence[float]]) -> float:
    """The mean over prompts of each prompt's mean (every prompt has the same sample count)."""
    return float(np.mean([np.mean(group) for group in groups]))


def bootstrap_interval(
    groups: Sequence[Sequence[float]], *, seed: int, resamples: int = 2000
) -> tuple[float, float] | None:
    """95 % percentile bootstrap interval of `mean_of_prompt_means`, resampling prompts
    with replacement (BOOTSTRAP_METHOD). None for fewer than two prompts."""
    if len(groups) < 2:
        return None
    means = np.array([np.mean(group) for group in groups])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(means), size=(resamples, len(means)))
    estimates = means[picks].mean(axis=1)
    low, high = np.percentile(estimates, [2.5, 97.5])
    return float(low), float(high)
