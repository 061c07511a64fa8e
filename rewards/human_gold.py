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
  β > 0. The fit is a point estimate: its uncertainty is the per-n intervals beside it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from core.stats import Share
from rewards.blind import BlindPair, BlindTally, blind_queue_create, blind_tally
from rewards.models import BestOfNExperiment, BestOfNSample, HumanGold
from rewards.overoptimisation import kl_best_of_n, n_for_kl, n_grid
from rewards.schemas import HumanGoldPair, HumanGoldPairs

METHOD = (
    "win rate of the proxy's best-of-n over a random single sample (best-of-1) in blind "
    "pairs, sides balanced and hidden, ties left out of n; Wilson 95 % interval per n; fit "
    "win rate − 0.5 = d(α − β·d), d = √KL, least squares with no intercept (a point fit)"
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
    alpha: float
    beta: float
    peak_d: float | None  # None when β ≤ 0 (no peak in sight)
    peak_n: float | None


@dataclass(frozen=True)
class HumanCurve:
    points: list[HumanPoint]
    labels: int  # decisive labels over every n
    fit: HumanFit | None  # None below two n with labels
    method: str = METHOD


def human_curve(tallies: dict[int, BlindTally], grid: Sequence[int]) -> HumanCurve:
    """The human gold curve from best-of-n's tally per n (n of the grid above 1)."""
    import numpy as np

    points = []
    for n in grid[1:]:
        t = tallies.get(n, BlindTally(Share(0, 0), 0, 0))
        points.append(HumanPoint(n, kl_best_of_n(n) ** 0.5, t.wins, t.ties, t.both_bad))
    used = [p for p in points if p.wins.n]
    fit = None
    if len(used) >= 2:
        d = np.array([p.d for p in used])
        y = np.array([p.wins.k / p.wins.n - 0.5 for p in used])
        (alpha, beta), *_ = np.linalg.lstsq(np.stack([d, -(d**2)], axis=1), y, rcond=None)
        alpha, beta = float(alpha), float(beta)
        peak_d = alpha / (2 * beta) if beta > 0 else None
        peak_n = n_for_kl(max(peak_d, 0.0) ** 2) if peak_d is not None else None
        fit = HumanFit(alpha, beta, peak_d, peak_n)
    return HumanCurve(points, sum(p.wins.n for p in points), fit)


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


def human_gold_result(human: HumanGold, samples_per_prompt: int) -> HumanCurve:
    """The human gold curve from the queue's labels as they are now."""
    items = human.typed_pairs.items
    tallies = blind_tally(
        queue_id=human.queue_id,
        x_sides={item_id: pair.side for item_id, pair in items.items()},
        group=lambda item_id: items[item_id].n,
    )
    return human_curve(tallies, n_grid(samples_per_prompt))
