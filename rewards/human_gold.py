"""Human gold for a best-of-n over-optimisation experiment: people compare best-of-n with
best-of-1 in blind pairs, and the win rate of best-of-n stands in for the gold reward.

Method (the page and the API state it beside the figure):

- Pairs. With a generator seeded by the experiment's seed, draw `human_prompts` of the
  experiment's prompts; for each, and each n of the grid above 1, draw an n-subset of the N
  samples and take the one the proxy scores best (ties to the later sample, as the
  order-statistics estimator breaks them), and one sample uniformly (best-of-1). A pair
  whose two texts are the same is a tie nobody is asked about and is not queued. Sides are
  balanced: half the queued pairs put best-of-n on A, half on B, shuffled with the same
  generator. The judge sees the prompt and two responses (rewards/blind.py), nothing else.
- Curve. For each n, the win rate of best-of-n among the decisive labels (A or B; ties and
  "both bad" apart), with its Wilson 95 % interval, against d = √KL_bon(n); n = 1 is 0.5
  by construction (a sample against an exchangeable one).
- Fit. gold = d(α − β·d) by least squares with no intercept on (win rate − 0.5), every n
  with at least one decisive label weighted alike; the fitted peak at d* = α / 2β when
  β > 0. Intervals for α, β and d*: a 95 % percentile bootstrap over the sampled prompts
  (a prompt's pairs share it), refitting every resample, as the model-gold fit does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from annotations.models import Label
from core.stats import Share
from rewards.blind import BlindPair, BlindTally, blind_queue_create, blind_tally
from rewards.models import BestOfNExperiment, BestOfNSample, HumanGold
from rewards.overoptimisation import (
    BOOTSTRAP_RESAMPLES,
    Interval,
    kl_best_of_n,
    n_for_kl,
    n_grid,
    percentile_interval,
)
from rewards.schemas import HumanGoldPair, HumanGoldPairs

if TYPE_CHECKING:
    import numpy as np

METHOD = (
    "win rate of the proxy's best-of-n over a random single sample (best-of-1) in blind "
    "pairs, sides balanced and hidden, ties left out of n; Wilson 95 % interval per n; fit "
    "win rate − 0.5 = d(α − β·d), d = √KL, least squares with no intercept, its intervals a "
    "95 % percentile bootstrap over the sampled prompts, refitting each resample"
)


# --- the pairs (pure) -----------------------------------------------------------------------
@dataclass(frozen=True)
class Drawn:
    pairs: list[HumanGoldPair]
    identical: int  # drawn pairs not queued: the two texts were the same


def draw_pairs(
    proxy: Sequence[Sequence[float]], texts: Sequence[Sequence[str]], *, sample_size: int,
    seed: int,
) -> Drawn:  # fmt: skip
    """The blind pairs of a human gold from proxy[prompt][sample] and the samples' texts:
    the same arguments give the same pairs and sides (see the module's method)."""
    if not proxy or not 1 <= sample_size <= len(proxy):
        raise ValueError(f"the sample must hold 1 to {len(proxy)} prompts, got {sample_size}")
    big_n = len(proxy[0])
    rng = random.Random(f"arbiter human gold {seed}")
    kept: list[tuple[int, int, int, int]] = []
    identical = 0
    for p in sorted(rng.sample(range(len(proxy)), sample_size)):
        for n in n_grid(big_n)[1:]:
            subset = rng.sample(range(big_n), n)
            best = max(subset, key=lambda i, p=p: (proxy[p][i], i))  # type: ignore[misc]
            base = rng.randrange(big_n)
            if texts[p][best].strip() == texts[p][base].strip():
                identical += 1
            else:
                kept.append((p, n, best, base))
    sides = ["a", "b"] * (len(kept) // 2) + (["a"] if len(kept) % 2 else [])
    rng.shuffle(sides)
    pairs = [
        HumanGoldPair(prompt_index=p, n=n, best=best, base=base, side=side)  # type: ignore[arg-type]
        for (p, n, best, base), side in zip(kept, sides, strict=True)
    ]
    return Drawn(pairs, identical)


# --- the curve and the fit (pure) -----------------------------------------------------------
@dataclass(frozen=True)
class HumanPoint:
    n: int
    d: float  # √KL
    wins: Share  # best-of-n's wins among decisive labels, Wilson interval
    ties: int
    both_bad: int


@dataclass(frozen=True)
class HumanFit:
    alpha: Interval
    beta: Interval
    peak_d: Interval | None  # None when β ≤ 0 (no peak in sight)
    peak_n: float | None
    resamples: int  # bootstrap resamples that could be fitted (labels at two n or more)


@dataclass(frozen=True)
class HumanCurve:
    points: list[HumanPoint]
    labels: int  # decisive labels over every n
    prompts: int  # sampled prompts with at least one label
    fit: HumanFit | None  # None below two n with labels
    method: str = METHOD


def _fit_win_rates(d: np.ndarray, wins: np.ndarray, decisive: np.ndarray) -> tuple[float, float]:
    """Least squares, no intercept, of (win rate − 0.5) ≈ α d − β d² over the n with labels;
    NaNs below two such n."""
    import numpy as np

    used = decisive > 0
    if used.sum() < 2:
        return math.nan, math.nan
    y = wins[used] / decisive[used] - 0.5
    x = d[used]
    (alpha, beta), *_ = np.linalg.lstsq(np.stack([x, -(x**2)], axis=1), y, rcond=None)
    return float(alpha), float(beta)


def human_curve(
    tallies: dict[tuple[int, int], BlindTally], grid: Sequence[int], *,
    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
) -> HumanCurve:  # fmt: skip
    """The human gold curve from best-of-n's tally per (sampled prompt, n), n of the grid
    above 1: Wilson intervals per n, and the fit with a percentile bootstrap over prompts
    (the independent unit: one prompt's pairs share it), refitting every resample."""
    import numpy as np

    ns = list(grid[1:])
    prompts = sorted({p for p, _ in tallies})
    wins = np.zeros((len(prompts), len(ns)))
    decisive = np.zeros((len(prompts), len(ns)))
    ties = [0] * len(ns)
    both_bad = [0] * len(ns)
    for (p, n), t in tallies.items():
        row, col = prompts.index(p), ns.index(n)
        wins[row, col] += t.wins.k
        decisive[row, col] += t.wins.n
        ties[col] += t.ties
        both_bad[col] += t.both_bad
    d = np.sqrt([kl_best_of_n(n) for n in ns])
    k_n, d_n = wins.sum(axis=0), decisive.sum(axis=0)
    points = [
        HumanPoint(n, float(d[i]), Share(int(k_n[i]), int(d_n[i])), ties[i], both_bad[i])
        for i, n in enumerate(ns)
    ]
    labelled = int((decisive.sum(axis=1) > 0).sum())
    alpha, beta = _fit_win_rates(d, k_n, d_n)
    if math.isnan(alpha):
        return HumanCurve(points, int(d_n.sum()), labelled, None)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(resamples):
        rows = rng.integers(0, len(prompts), len(prompts))
        a, b = _fit_win_rates(d, wins[rows].sum(axis=0), decisive[rows].sum(axis=0))
        if not math.isnan(a):
            boot.append((a, b))
    samples = np.array(boot) if boot else np.array([[alpha, beta]])
    peak_d = peak_n = None
    if beta > 0:
        # As the model-gold fit: the peak's interval is over the resamples that turn down.
        turning = samples[samples[:, 1] > 0]
        d_star = alpha / (2 * beta)
        peaks = turning[:, 0] / (2 * turning[:, 1]) if len(turning) else np.array([d_star])
        peak_d = percentile_interval(d_star, peaks)
        peak_n = n_for_kl(max(d_star, 0.0) ** 2)
    fit = HumanFit(
        alpha=percentile_interval(alpha, samples[:, 0]),
        beta=percentile_interval(beta, samples[:, 1]),
        peak_d=peak_d,
        peak_n=peak_n,
        resamples=len(boot),
    )
    return HumanCurve(points, int(d_n.sum()), labelled, fit)


# --- rows -----------------------------------------------------------------------------------
def human_gold_queue_create(
    *, experiment: BestOfNExperiment, proxy: Sequence[Sequence[float]], proxy_version_id: int
) -> HumanGold:
    """The experiment's blind pairs as a pairwise queue with no members yet (the researcher
    adds annotators on the queue's page). Runs inside the caller's transaction, which marks
    the experiment done in the same commit."""
    texts: list[list[str]] = [[""] * experiment.samples_per_prompt for _ in experiment.prompts]
    for p, s, text in BestOfNSample.objects.filter(experiment=experiment).values_list(
        "prompt_index", "sample_index", "text"
    ):
        texts[p][s] = text
    drawn = draw_pairs(proxy, texts, sample_size=experiment.human_prompts, seed=experiment.seed)
    # The external id numbers the pairs in a shuffled order, so it tells the judge nothing
    # about the prompt or n either.
    order = list(range(len(drawn.pairs)))
    random.Random(f"arbiter human gold ids {experiment.seed}").shuffle(order)
    blind = [
        BlindPair(prompt=experiment.prompts[pair.prompt_index],
                  x=texts[pair.prompt_index][pair.best], y=texts[pair.prompt_index][pair.base],
                  side=pair.side, external_id=f"pair-{order[k]}")
        for k, pair in enumerate(drawn.pairs)
    ]  # fmt: skip
    queue, sides = blind_queue_create(
        # The judge's page shows the queue's name: it names neither the experiment nor
        # what is compared (the experiment's page links to the queue).
        name=f"Blind pairs, set {experiment.pk}", pairs=blind,
        members=[], user=experiment.created_by,
        instructions="Which response answers the prompt better? Both answer the same prompt; "
        "where each came from is hidden and differs from item to item.",
    )  # fmt: skip
    by_external = {f"pair-{order[k]}": pair for k, pair in enumerate(drawn.pairs)}
    ids = dict(queue.items.values_list("pk", "external_id"))
    items = {item_id: by_external[ids[item_id]] for item_id in sides}
    record = HumanGoldPairs(proxy_version_id=proxy_version_id, items=items,
                            identical=drawn.identical)  # fmt: skip
    return HumanGold.objects.create(experiment=experiment, queue=queue,
                                    pairs=record.model_dump(mode="json"))  # fmt: skip


def human_gold_result(human: HumanGold, samples_per_prompt: int, seed: int = 0) -> HumanCurve:
    """The human gold curve from the queue's labels as they are now."""
    items = human.typed_pairs.items
    tallies = blind_tally(
        queue_id=human.queue_id,
        x_sides={item_id: pair.side for item_id, pair in items.items()},
        group=lambda item_id: (items[item_id].prompt_index, items[item_id].n),
    )
    return human_curve(tallies, n_grid(samples_per_prompt), seed=seed)


HUMAN_EXPORT_HEADER = ["item_id", "prompt_index", "n", "best_of_n_sample", "best_of_1_sample",
                       "best_of_n_side", "annotator_id", "choice", "best_of_n_won"]  # fmt: skip


def human_gold_export_rows(human: HumanGold) -> Iterator[list[Any]]:
    """One row per label of the blind pairs (an item without labels: one row, label fields
    empty), header first, with what the judge never saw: the n, the two samples (indices as
    in the samples export) and best-of-n's side. `best_of_n_won` is 1 or 0 for an A/B label,
    empty for a tie or both bad."""
    yield HUMAN_EXPORT_HEADER
    labels: dict[int, list[tuple[int | None, str]]] = {}
    for item_id, annotator_id, value in (
        Label.objects.filter(queue=human.queue_id)
        .order_by("pk")
        .values_list("item_id", "annotator_id", "value")
    ):
        labels.setdefault(item_id, []).append((annotator_id, str(value.get("choice", ""))))
    for item_id, pair in sorted(human.typed_pairs.items.items()):
        head = [item_id, pair.prompt_index, pair.n, pair.best, pair.base, pair.side]
        for who, choice in labels.get(item_id, [(None, "")]):
            won = int(choice == pair.side) if choice in ("a", "b") else ""
            yield [*head, who if who is not None else "", choice, won]
