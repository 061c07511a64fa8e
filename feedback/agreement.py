"""How a model annotator's labels agree with people: per principle and overall, Cohen's kappa
and raw agreement against the human majority and against gold, with intervals; a confusion
table; the items of strongest disagreement; the share of items whose two orders chose
differently (position bias: the responses swapped on a comparison, the scale reversed on a
rating).

Methods, stated beside every figure on the page:
- raw agreement: a share of items, with the Wilson 95 % interval (core.stats.Share);
- Cohen's kappa: nominal on choices, quadratic-weighted on 1–7 ratings (as the queue
  dashboard's human kappa); its 95 % interval is a percentile bootstrap over items (the
  independent unit), BOOTSTRAP_RESAMPLES resamples with a fixed seed, so a page shows the
  same interval twice; resamples in which kappa is undefined (one category only) are left out;
- the human majority of an item is its most common human label (non-gold labels); an item
  whose top two values tie has no majority and is left out of that comparison;
- overall: comparisons average P(A) over the principles that named an option; ratings average
  the principles' rating distributions; the overall answer is read from that mean.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotations.kinds import ItemKind
from annotations.models import Item, Label, Queue
from core.stats import Share
from feedback.models import AILabel, LabellingRun, Principle

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240521
KAPPA_METHOD = f"95 % percentile bootstrap over items ({BOOTSTRAP_RESAMPLES} resamples, fixed seed)"
CHOICES = ["a", "b", "tie", "both_bad"]
RATINGS = list(range(1, 8))
STRONGEST_SHOWN = 10


# --- statistics: pure functions ---------------------------------------------------------------
def _codes(values: Sequence[Any], domain: Sequence[Any]) -> np.ndarray:
    index = {value: n for n, value in enumerate(domain)}
    return np.array([index[value] for value in values], dtype=np.int64)


def _weights(size: int, weighting: str | None) -> np.ndarray:
    i, j = np.indices((size, size))
    if weighting == "quadratic":
        return ((i - j) ** 2).astype(float)
    return (i != j).astype(float)


def _kappa_of(confusion: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Kappa of one or many confusion tables (last two axes); NaN where undefined."""
    n = confusion.sum(axis=(-2, -1), keepdims=True)
    expected = confusion.sum(axis=-1, keepdims=True) * confusion.sum(axis=-2, keepdims=True) / n
    observed_w = (weights * confusion).sum(axis=(-2, -1))
    expected_w = (weights * expected).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected_w > 0, 1 - observed_w / expected_w, np.nan)


def confusion_table(
    ai: Sequence[Any], reference: Sequence[Any], domain: Sequence[Any]
) -> np.ndarray:
    """Counts: rows are the model's answer, columns the reference's."""
    size = len(domain)
    codes = _codes(ai, domain) * size + _codes(reference, domain)
    return np.bincount(codes, minlength=size * size).reshape(size, size)


def cohen_kappa(
    ai: Sequence[Any], reference: Sequence[Any], domain: Sequence[Any], *, weighting: str | None
) -> float | None:
    """Cohen's kappa (weighting None: nominal; "quadratic"); None where it is undefined (no
    items, or both raters used one and the same category)."""
    if not ai:
        return None
    table = confusion_table(ai, reference, domain).astype(float)
    kappa = float(_kappa_of(table, _weights(len(domain), weighting)))
    return None if np.isnan(kappa) else kappa


def kappa_interval(
    ai: Sequence[Any],
    reference: Sequence[Any],
    domain: Sequence[Any],
    *,
    weighting: str | None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """The 95 % percentile bootstrap interval of kappa, resampling items."""
    n, size = len(ai), len(domain)
    if n < 2:
        return None
    codes = _codes(ai, domain) * size + _codes(reference, domain)
    picks = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    offsets = (np.arange(resamples) * size * size)[:, None]
    tables = np.bincount((codes[picks] + offsets).ravel(), minlength=resamples * size * size)
    kappas = _kappa_of(tables.reshape(resamples, size, size).astype(float),
                       _weights(size, weighting))  # fmt: skip
    kappas = kappas[~np.isnan(kappas)]
    if not len(kappas):
        return None
    low, high = np.percentile(kappas, [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class Figure:
    """The model against one reference (the human majority, or gold) on the items both have."""

    reference: str
    agree: Share
    kappa: float | None
    kappa_ci: tuple[float, float] | None
    captions: list[str]
    confusion: list[list[int]]

    @property
    def n(self) -> int:
        return self.agree.n

    @property
    def confusion_rows(self) -> list[tuple[str, list[int]]]:
        return list(zip(self.captions, self.confusion, strict=True))


def figure(
    reference_name: str,
    pairs: Sequence[tuple[Any, Any]],
    domain: Sequence[Any],
    captions: Sequence[str],
    *,
    weighting: str | None,
) -> Figure:
    ai = [a for a, _ in pairs]
    ref = [r for _, r in pairs]
    table = confusion_table(ai, ref, domain) if pairs else np.zeros((len(domain),) * 2, int)
    return Figure(
        reference=reference_name,
        agree=Share(sum(1 for a, r in pairs if a == r), len(pairs)),
        kappa=cohen_kappa(ai, ref, domain, weighting=weighting),
        kappa_ci=kappa_interval(ai, ref, domain, weighting=weighting),
        captions=list(captions),
        confusion=table.tolist(),
    )


# --- reading a run ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """The model's answer on one item (for one principle, or overall)."""

    scalar: Any  # None: no option named
    probability: float | None  # comparisons: P(A); ratings: P(the rating given)
    distribution: tuple[float, ...] = ()


@dataclass(frozen=True)
class PrincipleAgreement:
    title: str  # "Overall", or the principle's text
    short: str  # "All", "P1", …
    labelled: int  # items the model answered
    no_option: int  # items where it named no option
    order_disagreement: Share | None  # share of items whose two orders chose apart
    vs_majority: Figure
    vs_gold: Figure


@dataclass(frozen=True)
class StrongDisagreement:
    item_id: int
    external_id: str
    model: str  # the model's answer, as a caption
    probability: float  # the model's probability of its own answer
    people: str  # the human majority, as a caption
    by_principle: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class RunAgreement:
    run: LabellingRun
    comparison: bool
    rows: list[PrincipleAgreement]  # overall first, then each principle
    strongest: list[StrongDisagreement]
    kappa_method: str = KAPPA_METHOD
    weighting: str = "nominal"


def _captions(kind: ItemKind) -> dict[Any, str]:
    return {kind.scalar(key.value): key.caption for key in kind.keys}


def human_majority(queue: Queue) -> dict[int, Any]:
    """Each non-gold item's most common human value; items whose top values tie are left out."""
    kind = queue.item_kind
    counts: dict[int, Counter[Any]] = defaultdict(Counter)
    rows = Label.objects.filter(queue=queue, is_gold=False).values_list("item_id", "value")
    for item_id, value in rows.iterator(chunk_size=2000):
        counts[item_id][kind.scalar(value)] += 1
    majority = {}
    for item_id, counter in counts.items():
        (top, top_n), *rest = counter.most_common(2)
        if not rest or rest[0][1] < top_n:
            majority[item_id] = top
    return majority


def gold_values(queue: Queue) -> dict[int, Any]:
    kind = queue.item_kind
    rows = Item.objects.filter(queue=queue, is_gold=True).values_list("pk", "gold_value")
    return {pk: kind.scalar(value) for pk, value in rows if value is not None}


def _overall(comparison: bool, answers: list[Answer]) -> Answer:
    named = [a for a in answers if a.scalar is not None]
    if not named:
        return Answer(None, None)
    if comparison:
        p_a = round(sum(a.probability or 0.0 for a in named) / len(named), 12)
        return Answer("a" if p_a > 0.5 else "b" if p_a < 0.5 else "tie", p_a)
    mean = np.mean([a.distribution for a in named], axis=0)
    best = int(np.argmax(mean))
    return Answer(best + 1, float(mean[best]), tuple(float(p) for p in mean))


def _own_probability(comparison: bool, answer: Answer) -> float:
    p = answer.probability or 0.0
    if comparison and answer.scalar == "b":
        return 1 - p
    if comparison and answer.scalar == "tie":
        return 0.5
    return p


def run_answers(
    run: LabellingRun, *, items: Collection[int] | None = None
) -> dict[int | None, dict[int, Answer]]:
    """Each principle's answers by item (all items, or those given), and the overall
    answers under the key None."""
    comparison = run.annotator.queue.item_kind.value_field == "choice"
    value_field = run.annotator.queue.item_kind.value_field
    by_principle: dict[int | None, dict[int, Answer]] = defaultdict(dict)
    labels = AILabel.objects.filter(run=run)
    if items is not None:
        labels = labels.filter(item_id__in=list(items))
    rows = labels.values_list("item_id", "principle_id", "value", "probability", "distribution")
    by_item: dict[int, list[Answer]] = defaultdict(list)
    for item_id, principle_id, value, probability, distribution in rows.iterator(2000):
        answer = Answer(
            None if value is None else value[value_field], probability, tuple(distribution or ())
        )
        by_principle[principle_id][item_id] = answer
        by_item[item_id].append(answer)
    for item_id, answers in by_item.items():
        by_principle[None][item_id] = _overall(comparison, answers)
    return by_principle


def run_agreement(run: LabellingRun) -> RunAgreement:
    queue = run.annotator.queue
    kind = queue.item_kind
    comparison = kind.value_field == "choice"
    domain: list[Any] = CHOICES if comparison else RATINGS
    weighting = None if comparison else "quadratic"
    names = _captions(kind)
    captions = [names.get(value, str(value)) for value in domain]
    majority = human_majority(queue)
    gold = gold_values(queue)
    answers = run_answers(run)
    principles = list(run.version.principles.order_by("position"))
    disagree_rows = AILabel.objects.filter(run=run, orders_disagree__isnull=False)
    rows = []
    for principle in [None, *principles]:
        key = None if principle is None else principle.pk
        mine = answers.get(key, {})
        named = {item: a for item, a in mine.items() if a.scalar is not None}
        scoped = disagree_rows if principle is None else disagree_rows.filter(principle=principle)
        order_share = Share(scoped.filter(orders_disagree=True).count(), scoped.count())
        rows.append(
            PrincipleAgreement(
                title="Overall (all principles)" if principle is None else principle.text,
                short="All" if principle is None else principle.short,
                labelled=len(named),
                no_option=len(mine) - len(named),
                order_disagreement=order_share,
                vs_majority=figure(
                    "human majority",
                    [(a.scalar, majority[i]) for i, a in named.items() if i in majority],
                    domain, captions, weighting=weighting,
                ),
                vs_gold=figure(
                    "gold",
                    [(a.scalar, gold[i]) for i, a in named.items() if i in gold],
                    domain, captions, weighting=weighting,
                ),
            )
        )  # fmt: skip
    return RunAgreement(
        run=run,
        comparison=comparison,
        rows=rows,
        strongest=_strongest(run, answers, principles, majority, names, comparison),
        weighting="nominal" if comparison else "quadratic",
    )


def _strongest(
    run: LabellingRun,
    answers: dict[int | None, dict[int, Answer]],
    principles: list[Principle],
    majority: dict[int, Any],
    names: dict[Any, str],
    comparison: bool,
) -> list[StrongDisagreement]:
    """Items where the model's overall answer differs from the human majority, the model's
    most confident first (ratings: the farthest apart first, then the most confident)."""
    found = []
    for item_id, answer in answers.get(None, {}).items():
        people = majority.get(item_id)
        if answer.scalar is None or people is None or answer.scalar == people:
            continue
        own = _own_probability(comparison, answer)
        distance = 1 if comparison else abs(answer.scalar - people)
        found.append((distance, own, item_id, answer, people))
    found.sort(key=lambda row: (-row[0], -row[1], row[2]))
    shown = found[:STRONGEST_SHOWN]
    external = dict(
        Item.objects.filter(pk__in=[row[2] for row in shown]).values_list("pk", "external_id")
    )
    result = []
    for _, own, item_id, answer, people in shown:
        by_principle = []
        for principle in principles:
            mine = answers.get(principle.pk, {}).get(item_id)
            text = (
                "no option"
                if mine is None or mine.scalar is None
                else names.get(mine.scalar, str(mine.scalar))
            )
            by_principle.append((principle.short, text))
        result.append(
            StrongDisagreement(
                item_id=item_id,
                external_id=external.get(item_id, ""),
                model=names.get(answer.scalar, str(answer.scalar)),
                probability=own,
                people=names.get(people, str(people)),
                by_principle=by_principle,
            )
        )
    return result
