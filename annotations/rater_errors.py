"""Where raters err, on a comparison queue: the systematic ways annotators depart from a
reference answer ("the reward model learns to reward what fools the rater").

The reference of an item is its gold value (gold items), else a high-agreement consensus of
its labels: at least CONSENSUS_MIN_LABELS a/b labels, CONSENSUS_SHARE or more on one side
(the annotator's own label counts in it, so a consensus item's dissenters are its minority).
Only "A better" / "B better" labels and references count; ties and "both bad" are left out.

- Position bias: P(chose A) over an annotator's a/b labels, against 0.5 (sides are shown in
  the order the item has; a queue whose items put the better answer on a random side
  expects 0.5). Wilson 95 % interval (core.stats.Share).
- Length bias: among the labels that disagree with the reference (lengths differing), the
  share that chose the longer response, against 0.5. Wilson 95 % interval.
- Agreement with the reference by item feature (length difference, time spent, position of
  the reference's answer, style markers), each bin a Share.
- A logistic regression of "disagrees with the reference" on those features
  (scikit-learn, unpenalised); 95 % intervals are Wald intervals from the Fisher information
  (the inverse of X'WX at the fit), stated beside them.
- Gold items the majority of their labels got wrong, linked to the preview.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from annotations.models import Item, Label, Queue
from core.stats import Share

CONSENSUS_MIN_LABELS = 3
CONSENSUS_SHARE = 0.8
MIN_REGRESSION_ROWS = 20
MIN_CLASS_ROWS = 3
# Responses within this length ratio count as the same length.
SAME_LENGTH = 0.2
Z95 = 1.959963984540054
REGRESSION_METHOD = (
    "logistic regression (scikit-learn, no penalty); 95 % Wald intervals from the Fisher "
    "information at the fit"
)
SIDES = ("a", "b")
_MARKERS = re.compile(r"(?m)^\s*(?:[-*•]|\d+[.)]|#{1,6})\s|\*\*|__|!")


def style_markers(text: str) -> int:
    """List items, headings, bold and exclamation marks: style that can sway a rater."""
    return len(_MARKERS.findall(text))


@dataclass(frozen=True)
class Row:
    """One a/b label on an item with an a/b reference."""

    item_id: int
    annotator: str
    chose: str
    reference: str
    len_a: int
    len_b: int
    markers_a: int
    markers_b: int
    time_s: float | None

    @property
    def disagrees(self) -> bool:
        return self.chose != self.reference

    def _ref_other(self, a: float, b: float) -> tuple[float, float]:
        return (a, b) if self.reference == "a" else (b, a)

    @property
    def length_log_ratio(self) -> float:
        """log((len of the reference's answer + 1) / (len of the other + 1))."""
        ref, other = self._ref_other(self.len_a, self.len_b)
        return math.log((ref + 1) / (other + 1))

    @property
    def marker_difference(self) -> int:
        ref, other = self._ref_other(self.markers_a, self.markers_b)
        return int(ref - other)

    @property
    def chose_longer(self) -> bool | None:
        if self.len_a == self.len_b:
            return None
        return (self.chose == "a") == (self.len_a > self.len_b)


@dataclass(frozen=True)
class Biases:
    who: str  # an annotator's name, or "everyone"
    position: Share  # chose A, of a/b labels
    length: Share  # chose the longer, of the labels that disagree with the reference
    agreement: Share  # agrees with the reference, of labels with one

    @property
    def position_biased(self) -> bool:
        return _excludes_half(self.position)

    @property
    def length_biased(self) -> bool:
        return _excludes_half(self.length)


def _excludes_half(share: Share) -> bool:
    """Its Wilson interval leaves 0.5 out."""
    return share.interval is not None and not share.interval[0] <= 0.5 <= share.interval[1]


@dataclass(frozen=True)
class FeatureBin:
    feature: str
    label: str
    agreement: Share


@dataclass(frozen=True)
class Coefficient:
    name: str
    value: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Regression:
    rows: int
    disagreements: int
    coefficients: list[Coefficient]
    note: str = ""  # why there is no fit, or what to read with care
    method: str = REGRESSION_METHOD


@dataclass(frozen=True)
class MajorityWrong:
    item_id: int
    external_id: str
    reference: str
    wrong: int
    labels: int


@dataclass(frozen=True)
class RaterErrors:
    applicable: bool
    reason: str
    gold_items: int
    consensus_items: int
    overall: Biases | None
    annotators: list[Biases]
    bins: list[FeatureBin]
    regression: Regression | None
    majority_wrong: list[MajorityWrong]


def _not_applicable(reason: str) -> RaterErrors:
    return RaterErrors(False, reason, 0, 0, None, [], [], None, [])


def rater_errors(queue: Queue) -> RaterErrors:
    """The section's figures for one queue (comparison queues with gold or consensus)."""
    kind = queue.item_kind
    if kind.pair_fields is None:
        return _not_applicable("Only comparison queues have a position and a length to err by.")
    labels = (
        Label.objects.filter(queue=queue)
        .order_by("item_id", "id")
        .values_list("item_id", "annotator__username", "value", "time_spent_ms")
    )
    by_item: dict[int, list[tuple[str, str, float | None]]] = defaultdict(list)
    all_choices: list[tuple[str, str]] = []  # (annotator, a/b) for position bias
    for item_id, username, value, time_ms in labels.iterator(chunk_size=2000):
        choice = str(kind.scalar(value))
        if choice in SIDES:
            by_item[item_id].append((username, choice, None if time_ms is None else time_ms / 1000))
            all_choices.append((username, choice))
    items = Item.objects.filter(pk__in=list(by_item)).values_list(
        "pk", "external_id", "payload", "is_gold", "gold_value"
    )
    rows: list[Row] = []
    gold_items = consensus_items = 0
    majority_wrong: list[MajorityWrong] = []
    for item_id, external_id, payload, is_gold, gold_value in items.iterator(chunk_size=500):
        votes = by_item[item_id]
        gold = kind.scalar(gold_value) if is_gold and gold_value is not None else None
        reference = _reference(gold, votes)
        if reference is None:
            continue
        gold_items += is_gold
        consensus_items += not is_gold
        _, _, a, b = kind.pair(payload)
        rows += [
            Row(item_id, username, choice, reference, len(a), len(b), style_markers(a),
                style_markers(b), time_s)
            for username, choice, time_s in votes
        ]  # fmt: skip
        wrong = sum(1 for _, choice, _ in votes if choice != reference)
        if is_gold and wrong * 2 > len(votes):
            majority_wrong.append(MajorityWrong(item_id, external_id, reference, wrong, len(votes)))
    if not rows:
        return _not_applicable(
            "No item has a reference yet: add gold items, or label items "
            f"{CONSENSUS_MIN_LABELS}+ times (a consensus needs {CONSENSUS_SHARE:.0%} on one side)."
        )
    by_annotator: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_annotator[row.annotator].append(row)
    choices_by: dict[str, list[str]] = defaultdict(list)
    for username, choice in all_choices:
        choices_by[username].append(choice)
    annotators = [
        _biases(name, choices_by[name], by_annotator.get(name, [])) for name in sorted(choices_by)
    ]
    majority_wrong.sort(key=lambda m: (-m.wrong / m.labels, m.item_id))
    return RaterErrors(
        applicable=True, reason="", gold_items=gold_items, consensus_items=consensus_items,
        overall=_biases("everyone", [c for _, c in all_choices], rows), annotators=annotators,
        bins=feature_bins(rows), regression=disagreement_regression(rows),
        majority_wrong=majority_wrong[:50],
    )  # fmt: skip


def _reference(gold: object, votes: Sequence[tuple[str, str, float | None]]) -> str | None:
    if gold is not None:
        return str(gold) if gold in SIDES else None
    if len(votes) < CONSENSUS_MIN_LABELS:
        return None
    side, count = Counter(choice for _, choice, _ in votes).most_common(1)[0]
    return side if count / len(votes) >= CONSENSUS_SHARE else None


def _biases(who: str, choices: Sequence[str], rows: Sequence[Row]) -> Biases:
    wrong = [r for r in rows if r.disagrees and r.chose_longer is not None]
    return Biases(
        who=who,
        position=Share(sum(1 for c in choices if c == "a"), len(choices)),
        length=Share(sum(1 for r in wrong if r.chose_longer), len(wrong)),
        agreement=Share(sum(1 for r in rows if not r.disagrees), len(rows)),
    )


def _length_bin(row: Row) -> str:
    ratio = row.length_log_ratio
    if ratio > math.log(1 + SAME_LENGTH):
        return "reference answer longer"
    if ratio < -math.log(1 + SAME_LENGTH):
        return "reference answer shorter"
    return "about the same length"


def _time_bin(row: Row) -> str:
    if row.time_s is None:
        return "time unknown"
    if row.time_s < 5:
        return "under 5 s"
    return "5–20 s" if row.time_s < 20 else "20 s or more"


def _marker_bin(row: Row) -> str:
    diff = row.marker_difference
    if diff > 0:
        return "reference answer has more style markers"
    return "reference answer has fewer style markers" if diff < 0 else "same style markers"


FEATURES: list[tuple[str, Callable[[Row], str], list[str]]] = [
    ("length difference", _length_bin,
     ["reference answer longer", "about the same length", "reference answer shorter"]),
    ("time spent", _time_bin, ["under 5 s", "5–20 s", "20 s or more", "time unknown"]),
    ("position", lambda r: f"reference answer on {r.reference.upper()}",
     ["reference answer on A", "reference answer on B"]),
    ("style markers", _marker_bin,
     ["reference answer has more style markers", "same style markers",
      "reference answer has fewer style markers"]),
]  # fmt: skip


def feature_bins(rows: Sequence[Row]) -> list[FeatureBin]:
    """Agreement with the reference in each bin of each feature (empty bins left out)."""
    out = []
    for feature, bin_of, order in FEATURES:
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for row in rows:
            cell = counts[bin_of(row)]
            cell[0] += not row.disagrees
            cell[1] += 1
        out += [FeatureBin(feature, label, Share(*counts[label])) for label in order
                if counts[label][1]]  # fmt: skip
    return out


REGRESSORS = [
    ("log length ratio (reference ÷ other)", lambda r: r.length_log_ratio),
    ("log seconds spent", lambda r: r.time_s),
    ("reference answer on A", lambda r: 1.0 if r.reference == "a" else 0.0),
    ("style markers (reference − other)", lambda r: float(r.marker_difference)),
]


def disagreement_regression(rows: Sequence[Row]) -> Regression:
    """P(disagrees with the reference) ~ the features, with Fisher-information intervals.
    Seconds unknown are set to the median of the known ones (log scale); a feature with no
    spread is left out (its coefficient is not identified)."""
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    y = np.array([1.0 if r.disagrees else 0.0 for r in rows])
    wrong = int(y.sum())
    if len(rows) < MIN_REGRESSION_ROWS or min(wrong, len(rows) - wrong) < MIN_CLASS_ROWS:
        return Regression(len(rows), wrong, [], note=(
            f"Needs {MIN_REGRESSION_ROWS}+ labels with a reference and {MIN_CLASS_ROWS}+ each of "
            "agreements and disagreements."
        ))  # fmt: skip
    columns, names = [], []
    for name, value_of in REGRESSORS:
        values = [value_of(r) for r in rows]
        if name.startswith("log seconds"):
            known = [math.log(max(v, 0.05)) for v in values if v is not None]
            if not known:
                continue
            middle = float(np.median(known))
            values = [middle if v is None else math.log(max(v, 0.05)) for v in values]
        column = np.array(values, dtype=float)
        if column.std() > 1e-9:
            columns.append(column)
            names.append(name)
    if not columns:
        return Regression(len(rows), wrong, [], note="No feature varies across these labels.")
    x = np.stack(columns, axis=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = LogisticRegression(C=np.inf, max_iter=2000).fit(x, y)  # unpenalised
    beta = np.concatenate([model.intercept_, model.coef_[0]])
    design = np.hstack([np.ones((len(rows), 1)), x])
    p = model.predict_proba(x)[:, 1]
    information = design.T @ (design * (p * (1 - p))[:, None])
    note = ""
    if any(issubclass(w.category, ConvergenceWarning) for w in caught) or np.abs(beta).max() > 15:
        note = ("The fit did not settle (a feature separates agreements from disagreements "
                "almost perfectly): read the signs, not the sizes.")  # fmt: skip
    variances = np.full(len(beta), np.inf)
    if np.linalg.cond(information) < 1e12:
        variances = np.diag(np.linalg.inv(information))
    if not (np.isfinite(variances).all() and (variances > 0).all()):
        variances = np.full(len(beta), np.inf)
        note = note or "The Fisher information is (nearly) singular: no intervals."
    se = np.sqrt(variances)
    coefficients = [
        Coefficient(name, float(b), float(b - Z95 * s), float(b + Z95 * s))
        for name, b, s in zip(["intercept", *names], beta, se, strict=True)
    ]
    return Regression(len(rows), wrong, coefficients, note=note)
