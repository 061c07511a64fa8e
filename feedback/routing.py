"""AI first, people where it matters: which items people should see first, and which items a
confident model label lets finish with fewer human labels (reads and pure rules; the writes
are feedback.services.routing_apply and shortcuts_apply).

Routing score of an item, 0–1, highest first: the largest of
- the model's uncertainty, 1 − |2·P(A) − 1| on comparisons (1 at p = 0.5), 1 − P(rating) on
  ratings;
- 1 when its two orders chose differently on any principle (position bias);
- 1 when its principles disagree with each other;
- 1 when it disagrees with a human label already given, or named no option.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from annotations.models import Item, Label
from core.stats import Share
from feedback.agreement import Answer, gold_values, run_answers
from feedback.models import AILabel, LabellingRun


def own_probability(comparison: bool, answer: Answer) -> float | None:
    """The model's probability of the answer it gave (None: no option named)."""
    if answer.scalar is None or answer.probability is None:
        return None
    if not comparison:
        return answer.probability
    if answer.scalar == "tie":
        return 0.5
    return answer.probability if answer.scalar == "a" else 1 - answer.probability


def routing_scores(run: LabellingRun) -> dict[int, float]:
    kind = run.annotator.queue.item_kind
    comparison = kind.value_field == "choice"
    answers = run_answers(run)
    overall = answers.get(None, {})
    torn = set(
        AILabel.objects.filter(run=run, orders_disagree=True).values_list("item_id", flat=True)
    )
    principle_answers: dict[int, set[Any]] = defaultdict(set)
    for key, by_item in answers.items():
        if key is None:
            continue
        for item_id, answer in by_item.items():
            principle_answers[item_id].add(answer.scalar)
    human: dict[int, set[Any]] = defaultdict(set)
    rows = Label.objects.filter(queue=run.annotator.queue, is_gold=False).values_list(
        "item_id", "value"
    )
    for item_id, value in rows.iterator(chunk_size=2000):
        human[item_id].add(kind.scalar(value))
    gold_items = Item.objects.filter(queue=run.annotator.queue, is_gold=True)
    gold = set(gold_items.values_list("pk", flat=True))
    scores = {}
    for item_id, answer in overall.items():
        if item_id in gold:
            continue
        own = own_probability(comparison, answer)
        if own is None:
            scores[item_id] = 1.0
            continue
        p = answer.probability or 0.0
        uncertain = 1 - abs(2 * p - 1) if comparison else 1 - own
        flags = (
            item_id in torn,
            len(principle_answers[item_id]) > 1,
            bool(human[item_id] - {answer.scalar}),
        )
        scores[item_id] = round(max(uncertain, 1.0 if any(flags) else 0.0), 6)
    return scores


def shortcut_items(run: LabellingRun, *, among: Collection[int] | None = None) -> set[int]:
    """Items (gold ones included; or only those `among`) whose overall model answer has at
    least the annotator's threshold probability; empty without a threshold."""
    threshold = run.annotator.shortcut_threshold
    if threshold is None or (among is not None and not among):
        return set()
    comparison = run.annotator.queue.item_kind.value_field == "choice"
    chosen = set()
    for item_id, answer in run_answers(run, items=among).get(None, {}).items():
        own = own_probability(comparison, answer)
        if own is not None and own >= threshold:
            chosen.add(item_id)
    return chosen


def counted_items(run: LabellingRun, *, among: Collection[int] | None = None) -> set[int]:
    """Items (or only those `among`) where the run's overall answer stands for one of the k
    labels: its annotator counts toward k, and the model named an option (a reply that names
    none is no label). Empty when the annotator does not count toward k."""
    if not run.annotator.counts_toward_k or (among is not None and not among):
        return set()
    answers = run_answers(run, items=among).get(None, {})
    return {item_id for item_id, answer in answers.items() if answer.scalar is not None}


@dataclass(frozen=True)
class ShortcutReport:
    run: LabellingRun
    threshold: float
    human_labels: int  # what such an item needs
    items: int  # regular items that take the shortcut
    finished: int  # of those, finished early (complete with fewer than k labels)
    labels_saved: int  # k − labels, summed over the items finished early
    gold: Share  # the model's accuracy on gold items that would take the shortcut


def shortcut_report(run: LabellingRun) -> ShortcutReport | None:
    annotator = run.annotator
    if annotator.shortcut_threshold is None:
        return None
    chosen = shortcut_items(run)
    gold = gold_values(annotator.queue)
    overall = run_answers(run).get(None, {})
    on_gold = [item for item in chosen if item in gold]
    regular = [item for item in chosen if item not in gold]
    k = annotator.queue.labels_per_item
    early = list(
        Item.objects.filter(pk__in=regular, complete=True, label_count__lt=k).values_list(
            "label_count", flat=True
        )
    )
    return ShortcutReport(
        run=run,
        threshold=annotator.shortcut_threshold,
        human_labels=annotator.shortcut_labels,
        items=len(regular),
        finished=len(early),
        labels_saved=sum(k - count for count in early),
        gold=Share(sum(1 for item in on_gold if overall[item].scalar == gold[item]), len(on_gold)),
    )
