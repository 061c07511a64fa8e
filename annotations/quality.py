"""Label quality: per-annotator gold accuracy, speed and time per label; per-queue agreement.

Krippendorff's alpha comes from the `krippendorff` package and Cohen's kappa from
scikit-learn; this module only shapes the labels into their inputs.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from annotations.models import Label, Queue

# Kappa between two annotators on fewer shared items than this says little.
MIN_SHARED_ITEMS = 5
MAX_KAPPA_PAIRS = 30
CHOICES = ["a", "b", "tie", "both_bad"]


@dataclass(frozen=True)
class AnnotatorStats:
    user_id: int | None  # None: a model annotator (annotations.dashboard)
    username: str
    labels: int
    gold_labels: int
    gold_correct: int
    labels_per_hour: float | None
    median_time_s: float | None
    is_model: bool = False

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_labels if self.gold_labels else None


@dataclass(frozen=True)
class KappaPair:
    first: str
    second: str
    shared: int
    kappa: float


@dataclass(frozen=True)
class Agreement:
    alpha: float | None
    level: str
    items_with_overlap: int
    pairs: list[KappaPair]

    @property
    def mean_kappa(self) -> float | None:
        return statistics.fmean(p.kappa for p in self.pairs) if self.pairs else None


def annotator_stats(queue: Queue) -> list[AnnotatorStats]:
    rows = (
        Label.objects.filter(queue=queue)
        .order_by("annotator_id")
        .values_list(
            "annotator_id", "annotator__username", "time_spent_ms", "is_gold", "gold_correct"
        )
    )
    by_user: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    names: dict[int, str] = {}
    for user_id, username, time_ms, is_gold, correct in rows.iterator(chunk_size=2000):
        by_user[user_id].append((time_ms, is_gold, correct))
        names[user_id] = username
    stats = []
    for user_id, labels in by_user.items():
        # Labels of unknown time (sent without the page's timer) count in no time statistic.
        times = [time_ms for time_ms, _, _ in labels if time_ms is not None]
        total_ms = sum(times)
        stats.append(
            AnnotatorStats(
                user_id=user_id,
                username=names[user_id],
                labels=len(labels),
                gold_labels=sum(1 for _, gold, _ in labels if gold),
                gold_correct=sum(1 for _, gold, correct in labels if gold and correct),
                # Per hour of time on items: what an hour of this annotator's work yields.
                labels_per_hour=3_600_000 * len(times) / total_ms if total_ms else None,
                median_time_s=statistics.median(times) / 1000 if times else None,
            )
        )
    return sorted(stats, key=lambda s: s.username)


def queue_agreement(queue: Queue) -> Agreement:
    """Krippendorff's alpha over every item with two or more labels, and Cohen's kappa for each
    pair of annotators sharing enough items (gold items left out: they are not the task)."""
    import krippendorff
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    kind = queue.item_kind
    ordinal = kind.value_field == "rating"
    domain: list[Any] = list(range(1, 8)) if ordinal else CHOICES
    index = {value: n for n, value in enumerate(domain)}
    rows = (
        Label.objects.filter(queue=queue, is_gold=False)
        .order_by("item_id")
        .values_list("item_id", "annotator__username", "value")
    )
    by_item: dict[int, dict[str, Any]] = defaultdict(dict)
    for item_id, username, value in rows.iterator(chunk_size=2000):
        by_item[item_id][username] = kind.scalar(value)
    overlapping = {item: labels for item, labels in by_item.items() if len(labels) >= 2}
    alpha = None
    if overlapping:
        counts = np.zeros((len(overlapping), len(domain)), dtype=int)
        for row, labels in enumerate(overlapping.values()):
            for value in labels.values():
                counts[row, index[value]] += 1
        if np.count_nonzero(counts.sum(axis=0)) >= 2:
            alpha = float(
                krippendorff.alpha(
                    value_counts=counts,
                    level_of_measurement="ordinal" if ordinal else "nominal",
                )
            )
    shared: dict[tuple[str, str], list[tuple[Any, Any]]] = defaultdict(list)
    for labels in overlapping.values():
        for first, second in itertools.combinations(sorted(labels), 2):
            shared[(first, second)].append((labels[first], labels[second]))
    pairs = []
    for (first, second), values in shared.items():
        if len(values) < MIN_SHARED_ITEMS:
            continue
        left, right = zip(*values, strict=True)
        if len(set(left) | set(right)) < 2:
            continue  # one category only: kappa is undefined
        kappa = cohen_kappa_score(
            left, right, labels=domain, weights="quadratic" if ordinal else None
        )
        if math.isfinite(kappa):
            pairs.append(KappaPair(first, second, len(values), float(kappa)))
    pairs.sort(key=lambda pair: -pair.shared)
    return Agreement(
        alpha=alpha,
        level="ordinal" if ordinal else "nominal",
        items_with_overlap=len(overlapping),
        pairs=pairs[:MAX_KAPPA_PAIRS],
    )


# --- charts: inline SVG, drawn by the template from these numbers ---------------------------
@dataclass(frozen=True)
class Bar:
    label: str
    value_text: str
    y: float
    width: float


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    height: int
    label_width: int = 90
    plot_width: int = 190
    row: int = 22


def bar_chart(
    title: str,
    values: list[tuple[str, float | None]],
    *,
    fmt: str = "{:.0f}",
    top: float | None = None,
) -> BarChart:
    known = [v for _, v in values if v is not None]
    scale = top if top is not None else max(known, default=0.0)
    chart = BarChart(title=title, bars=[], height=0)
    bars = []
    for n, (label, value) in enumerate(values):
        width = chart.plot_width * (value / scale) if value and scale else 0.0
        text = fmt.format(value) if value is not None else "–"
        bars.append(Bar(label=label, value_text=text, y=n * chart.row, width=round(width, 1)))
    return BarChart(title=title, bars=bars, height=max(1, len(values)) * chart.row)


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2 or 5 × 10^k that is at least `raw` (raw > 0)."""
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def _seconds(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step)))
    return f"{value:.{decimals}f}"


def time_histogram(queue: Queue, *, buckets: int = 10) -> BarChart:
    """Seconds per label in round-width buckets (1, 2 or 5 × 10^k s) reaching the 95th
    percentile; slower labels go in the last. Labels of unknown time are left out."""
    stored = Label.objects.filter(queue=queue).values_list("time_spent_ms", flat=True)
    times = sorted(ms / 1000 for ms in stored if ms is not None)
    if not times:
        return bar_chart("Seconds per label", [])
    top = times[int(0.95 * (len(times) - 1))]
    step = _nice_step(max(top, 0.001) / (buckets - 1))

    def bucket(seconds: float) -> int:
        return int(seconds / step + 1e-9)  # 0.6 s is in 0.6–0.7, whatever 0.6 / 0.1 rounds to

    buckets = min(buckets, bucket(top) + 2)
    counts = [0] * buckets
    for seconds in times:
        counts[min(buckets - 1, bucket(seconds))] += 1
    labels = [
        f"{_seconds(n * step, step)}–{_seconds((n + 1) * step, step)}" for n in range(buckets)
    ]
    labels[-1] = f"≥ {_seconds((buckets - 1) * step, step)}"
    return bar_chart("Seconds per label", list(zip(labels, map(float, counts), strict=True)))


def labels_over_time(queue: Queue) -> BarChart:
    """Labels per day, or per hour when all of them fall within two days (up to the last 30)."""
    stamps = list(Label.objects.filter(queue=queue).values_list("created_at", flat=True))
    if not stamps:
        return bar_chart("Labels over time", [])
    hourly = max(stamps) - min(stamps) <= timedelta(days=2)
    shape = "%d %b %H:00" if hourly else "%d %b"
    counts = Counter(
        stamp.replace(minute=0, second=0, microsecond=0) if hourly else stamp.date()
        for stamp in stamps
    )
    recent = sorted(counts)[-30:]
    title = "Labels per hour" if hourly else "Labels per day"
    return bar_chart(title, [(when.strftime(shape), float(counts[when])) for when in recent])


@dataclass(frozen=True)
class Distribution:
    """How often one annotator gave each value: a lopsided row flags a habit, not a view."""

    username: str
    total: int
    counts: list[tuple[str, int, int]]  # (value's caption, count, percent)


def label_distribution(queue: Queue) -> list[Distribution]:
    kind = queue.item_kind
    captions = [(kind.scalar(key.value), key.caption) for key in kind.keys]
    by_user: dict[str, Counter[Any]] = defaultdict(Counter)
    rows = Label.objects.filter(queue=queue, is_gold=False).values_list(
        "annotator__username", "value"
    )
    for username, value in rows.iterator(chunk_size=2000):
        by_user[username][kind.scalar(value)] += 1
    result = []
    for username in sorted(by_user):
        counts = by_user[username]
        total = sum(counts.values())
        result.append(
            Distribution(
                username=username,
                total=total,
                counts=[
                    (caption, counts[value], round(100 * counts[value] / total))
                    for value, caption in captions
                ],
            )
        )
    return result


@dataclass(frozen=True)
class Disagreement:
    item_id: int
    external_id: str
    labels: list[tuple[str, str]]  # (annotator, value's caption)


def disagreements(queue: Queue, *, limit: int = 50) -> list[Disagreement]:
    """Items whose annotators gave different values, most recently labelled first."""
    kind = queue.item_kind
    captions = {str(kind.scalar(key.value)): key.caption for key in kind.keys}
    rows = (
        Label.objects.filter(queue=queue, is_gold=False)
        .order_by("item_id", "created_at")
        .values_list("item_id", "item__external_id", "annotator__username", "value", "created_at")
    )
    by_item: dict[int, list[tuple[str, str]]] = defaultdict(list)
    external: dict[int, str] = {}
    latest: dict[int, datetime] = {}
    for item_id, external_id, username, value, created_at in rows.iterator(chunk_size=2000):
        scalar = str(kind.scalar(value))
        by_item[item_id].append((username, captions.get(scalar, scalar)))
        external[item_id] = external_id
        latest[item_id] = created_at
    split = [item for item, labels in by_item.items() if len({v for _, v in labels}) > 1]
    split.sort(key=lambda item: latest[item], reverse=True)
    return [Disagreement(item, external[item], by_item[item]) for item in split[:limit]]
