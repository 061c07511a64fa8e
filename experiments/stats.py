"""The experiment's statistics: small pure functions, each stating its method.

A participant's labels are not independent of each other (one rater's skill runs through all
of them), so the between-arm comparisons resample and permute participants, never labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_REPS = 2000
PERMUTATIONS = 2000
CONFIDENCE = 0.95

# Per participant: (labels correct, labels counted); or, for a Brier score, (the sum of the
# squared errors of their answers, answers counted). Either way the pooled figure is the sum
# of the first over the sum of the second, and the bootstrap resamples participants.
Tallies = Sequence[tuple[float, int]]

BOOTSTRAP_METHOD = (
    f"percentile bootstrap ({BOOTSTRAP_REPS} resamples, 95 %) clustered by participant: each "
    "arm's participants are resampled with replacement, with all their labels, and the "
    "pooled accuracies compared"
)
PERMUTATION_METHOD = (
    f"two-sided permutation test ({PERMUTATIONS} permutations): participants (with all their "
    "labels) are shuffled between the two arms; p = (permuted differences at least as large "
    "+ 1) / (permutations + 1)"
)
SANDWICH_METHOD = (
    "(P_assisted − P_unassisted) / (P_expert − P_unassisted), Bowman et al. 2022; P_expert = 1 "
    "as the gold labels are experts' answers; interval from the same clustered bootstrap"
)


BRIER_METHOD = (
    "Brier score: the mean of (1 − p)² over counted answers, p the probability put on the "
    "correct answer (0 is perfect; 50 % every time scores 0.25; lower is better); 95 % interval: "
    f"percentile bootstrap ({BOOTSTRAP_REPS} resamples) clustered by participant, each "
    "participant resampled with all their answers (the same resampling as the differences)"
)
# Reliability: the confidence in the answer chosen, in five bins (as debate analytics bins a
# judge's): 50–60 %, …, 90–100 %.
RELIABILITY_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
RELIABILITY_METHOD = (
    "reliability: each answer's confidence in the answer it favours, max(p, 1 − p), rounded to "
    "whole percent and put in five bins (50–60 %, …, 90–100 %); per bin the mean confidence "
    "against the share of answers whose favoured answer is correct (50 % favours none and "
    "counts as wrong), with its Wilson 95 % interval. On the diagonal is perfect calibration"
)


def pooled(tallies: Tallies) -> float | None:
    correct = sum(k for k, _ in tallies)
    counted = sum(n for _, n in tallies)
    return correct / counted if counted else None


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def _resampled(tallies: Tallies, rng: np.random.Generator, reps: int) -> np.ndarray:
    """Pooled accuracy of `reps` resamples of the participants (NaN where none counted)."""
    k = np.array([t[0] for t in tallies], dtype=float)
    n = np.array([t[1] for t in tallies], dtype=float)
    picks = rng.integers(0, len(tallies), size=(reps, len(tallies)))
    counted = n[picks].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: np.ndarray = k[picks].sum(axis=1) / counted
    return result


def _interval(value: float, draws: np.ndarray) -> Interval | None:
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return None
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Interval(value=value, low=float(low), high=float(high))


def squared_errors(probabilities: Sequence[float]) -> float:
    """The sum of (1 − p)² over probabilities on the correct answer: one participant's share
    of a pooled Brier score."""
    return float(sum((1 - p) ** 2 for p in probabilities))


def brier_bootstrap(
    errors: Tallies, *, seed: int = 0, reps: int = BOOTSTRAP_REPS
) -> Interval | None:
    """The pooled Brier score of per-participant (sum of squared errors, answers) with a
    participant-clustered percentile bootstrap interval; None with no answer counted."""
    value = pooled(errors)
    if value is None:
        return None
    rng = np.random.default_rng(seed)
    return _interval(value, _resampled(errors, rng, reps))


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    n: int
    confidence: float | None  # mean confidence in the favoured answer
    correct: int  # answers whose favoured answer is correct


def reliability(probabilities: Sequence[float]) -> list[ReliabilityBin]:
    """Reliability bins of probabilities on the correct answer (RELIABILITY_METHOD)."""
    members: list[list[float]] = [[] for _ in RELIABILITY_EDGES[1:]]
    hits = [0] * len(members)
    for p in probabilities:
        # Whole percent first: 1 − 0.4 is 0.5999…, which would fall a bin short of 60 %.
        percent = round(max(p, 1 - p) * 100)
        index = min(len(members) - 1, percent // 10 - 5)
        members[index].append(percent / 100)
        hits[index] += 1 if p > 0.5 else 0
    return [
        ReliabilityBin(
            low=low,
            high=high,
            n=len(found),
            confidence=sum(found) / len(found) if found else None,
            correct=hit,
        )  # fmt: skip
        for found, hit, low, high in zip(
            members, hits, RELIABILITY_EDGES, RELIABILITY_EDGES[1:], strict=False
        )
    ]


def difference_bootstrap(
    treated: Tallies, control: Tallies, *, seed: int = 0, reps: int = BOOTSTRAP_REPS
) -> Interval | None:
    """Pooled accuracy of `treated` minus that of `control`, with a participant-clustered
    percentile bootstrap interval. None when either arm has no counted label."""
    a, b = pooled(treated), pooled(control)
    if a is None or b is None:
        return None
    rng = np.random.default_rng(seed)
    return _interval(a - b, _resampled(treated, rng, reps) - _resampled(control, rng, reps))


def sandwich_bootstrap(
    assisted: Tallies,
    unassisted: Tallies,
    *,
    expert: float = 1.0,
    seed: int = 0,
    reps: int = BOOTSTRAP_REPS,
) -> Interval | None:
    """(P_a − P_u) / (P_expert − P_u) with a participant-clustered bootstrap interval; None
    when P_u already equals P_expert (the score is undefined)."""
    a, u = pooled(assisted), pooled(unassisted)
    if a is None or u is None or expert - u <= 0:
        return None
    rng = np.random.default_rng(seed)
    draws_a = _resampled(assisted, rng, reps)
    draws_u = _resampled(unassisted, rng, reps)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = np.where(expert - draws_u > 0, (draws_a - draws_u) / (expert - draws_u), np.nan)
    return _interval((a - u) / (expert - u), draws)


def permutation_p(
    treated: Tallies, control: Tallies, *, seed: int = 0, permutations: int = PERMUTATIONS
) -> float | None:
    """Two-sided p-value of the difference in pooled accuracy, permuting participants."""
    a, b = pooled(treated), pooled(control)
    if a is None or b is None:
        return None
    observed = abs(a - b)
    everyone = list(treated) + list(control)
    k = np.array([t[0] for t in everyone], dtype=float)
    n = np.array([t[1] for t in everyone], dtype=float)
    rng = np.random.default_rng(seed)
    # One row per permutation: the first len(treated) places are the "treated" arm.
    orders = rng.permuted(np.tile(np.arange(len(everyone)), (permutations, 1)), axis=1)
    first, second = orders[:, : len(treated)], orders[:, len(treated) :]
    counted_first, counted_second = n[first].sum(axis=1), n[second].sum(axis=1)
    usable = (counted_first > 0) & (counted_second > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = k[first].sum(axis=1) / counted_first - k[second].sum(axis=1) / counted_second
    at_least = int(np.count_nonzero(usable & (np.abs(diff) >= observed - 1e-12)))
    return (at_least + 1) / (permutations + 1)


def mean_or_none(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None
