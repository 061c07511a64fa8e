"""Export rows: labels read in item order from a server-side cursor, per label or by majority,
and TRL preference pairs made of them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from itertools import groupby
from typing import Any

from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils.crypto import salted_hmac

from annotations.exports.sources import label_sources
from annotations.exports.spec import Aggregation, ExportFormat, ExportInvalid, ExportSpec
from annotations.kinds import ItemKind, item_kind
from annotations.models import Label, Queue

CHUNK_ROWS = 2000
PROGRESS_EVERY = 5000


@lru_cache(maxsize=65536)
def annotator_pseudonym(user_id: int) -> str:
    """Stable per deployment (keyed by SECRET_KEY), meaningless outside it."""
    return "ann-" + salted_hmac("arbiter.annotations.pseudonym", str(user_id)).hexdigest()[:12]


@dataclass(frozen=True)
class Plan:
    spec: ExportSpec
    kind: ItemKind
    queue_names: dict[int, str]
    dropped_annotators: frozenset[int]


def export_plan(spec: ExportSpec) -> Plan:
    """Check the spec against the data; raises ExportInvalid with a message for the user."""
    if spec.since and spec.until and spec.since >= spec.until:
        raise ExportInvalid("'since' must be before 'until'.")
    queues = list(Queue.objects.filter(pk__in=spec.queues))
    if len(queues) != len(set(spec.queues)):
        raise ExportInvalid("Some of those queues do not exist.", status=404)
    kinds = {queue.kind for queue in queues}
    if len(kinds) != 1:
        raise ExportInvalid("Export queues of one kind at a time: their columns differ.")
    kind = item_kind(kinds.pop())
    trl = spec.format in (ExportFormat.TRL, ExportFormat.TRL_CONVERSATIONAL)
    if trl and kind.pair_fields is None:
        raise ExportInvalid(
            "TRL's preference format needs queues whose items compare two responses."
        )
    dropped: frozenset[int] = frozenset()
    if spec.min_gold_accuracy is not None:
        gold = (
            Label.objects.filter(queue__in=spec.queues, is_gold=True)
            .values("annotator")
            .annotate(total=Count("pk"), correct=Count("pk", filter=Q(gold_correct=True)))
        )
        dropped = frozenset(
            row["annotator"]
            for row in gold
            if row["correct"] < spec.min_gold_accuracy * row["total"]
        )
    return Plan(spec, kind, {queue.pk: queue.name for queue in queues}, dropped)


def _labels(plan: Plan) -> QuerySet[Label]:
    spec = plan.spec
    labels = Label.objects.filter(queue__in=spec.queues)
    if not spec.include_gold:
        labels = labels.filter(is_gold=False)
    if spec.since:
        labels = labels.filter(created_at__gte=spec.since)
    if spec.until:
        labels = labels.filter(created_at__lt=spec.until)
    if plan.dropped_annotators:
        labels = labels.exclude(annotator__in=plan.dropped_annotators)
    return labels


def export_size(plan: Plan) -> int:
    """Labels the export reads (the progress bar's denominator)."""
    return _labels(plan).count()


@dataclass(frozen=True, slots=True)
class LabelRow:
    item_id: int
    queue_id: int
    annotator_id: int
    label: Any  # the value's one field, as a plain scalar
    time_spent_ms: int | None  # None: unknown (sent without a time)
    created_at: datetime
    external_id: str
    payload: str  # the item's payload as JSON text: parsed only by writers that need fields


def _label_rows(plan: Plan) -> Iterator[LabelRow]:
    # The label's scalar and the payload's JSON text come straight from the database: parsing
    # a payload per label, only to serialise it again, would dominate the export's time.
    field = plan.kind.value_field
    rows = (
        _labels(plan)
        .order_by("item_id", "id")
        .values_list(
            "item_id",
            "queue_id",
            "annotator_id",
            KT(f"value__{field}"),
            "time_spent_ms",
            "created_at",
            "item__external_id",
            Cast("item__payload", TextField()),
        )  # fmt: skip
    )
    as_int = field == "rating"
    for row in rows.iterator(chunk_size=CHUNK_ROWS):
        if as_int:
            row = (*row[:3], int(row[3]), *row[4:])
        yield LabelRow(*row)


def _majority(labels: list[LabelRow], kind: ItemKind) -> tuple[Any, float] | None:
    """The most common label and its share; None on a tie for first place."""
    counts = Counter(label.label for label in labels).most_common(2)
    if len(counts) == 2 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0], counts[0][1] / len(labels)


Progress = Callable[[int], None]


def _iso(moment: datetime) -> str:
    # Always with microseconds, as Postgres's to_char(… 'US') writes them in the fast path.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _sourced(plan: Plan) -> bool:
    return plan.spec.include_ai_labels and plan.spec.aggregation == Aggregation.PER_LABEL


def export_records(plan: Plan, *, on_labels: Progress | None = None) -> Iterator[dict[str, Any]]:
    """Rows as dicts: people's labels in item order, then (include_ai_labels, per label) each
    registered source's labels (annotations/exports/sources.py), each row with its source.
    `on_labels(n)` is told how many human labels were read."""
    yield from _human_records(plan, on_labels)
    if not _sourced(plan):
        return
    for source in label_sources():
        for label in source.labels(plan.spec.queues, plan.spec.include_gold):
            yield {
                "queue": plan.queue_names[label.queue_id],
                "item_id": label.item_id,
                "external_id": label.external_id,
                "label": label.label,
                "annotator": label.annotator,
                "labelled_at": _iso(label.labelled_at),
                "time_spent_ms": None,
                "source": source.name,
                "provenance": label.provenance,
                "payload": label.payload,
            }


def _human_records(plan: Plan, on_labels: Progress | None) -> Iterator[dict[str, Any]]:
    spec, kind = plan.spec, plan.kind
    sourced = _sourced(plan)
    for item_id, group in groupby(_label_rows(plan), key=lambda row: row.item_id):
        labels = list(group)  # one item's labels: k of them, a handful
        if on_labels:
            on_labels(len(labels))
        majority = _majority(labels, kind)
        agreement = majority[1] if majority else 0.5 if len(labels) > 1 else 1.0
        if spec.min_agreement is not None and agreement < spec.min_agreement:
            continue
        first = labels[0]
        base = {
            "queue": plan.queue_names[first.queue_id],
            "item_id": item_id,
            "external_id": first.external_id,
        }
        if spec.aggregation == Aggregation.MAJORITY:
            if majority is None:
                continue  # ties are dropped
            yield base | {
                "label": majority[0],
                "n_labels": len(labels),
                "agreement": round(agreement, 4),
                "annotators": [annotator_pseudonym(label.annotator_id) for label in labels],
                "first_labelled_at": _iso(labels[0].created_at),
                "last_labelled_at": _iso(max(label.created_at for label in labels)),
                "payload": first.payload,
            }
        else:
            for label in labels:
                row = base | {
                    "label": label.label,
                    "annotator": annotator_pseudonym(label.annotator_id),
                    "labelled_at": _iso(label.created_at),
                    "time_spent_ms": label.time_spent_ms,
                }
                if sourced:
                    row |= {"source": "human", "provenance": None}
                yield row | {"payload": label.payload}


# --- preference pairs -----------------------------------------------------------------------
def _preference(
    record: dict[str, Any], kind: ItemKind, conversational: bool
) -> dict[str, Any] | None:
    choice = record["label"]
    if choice not in ("a", "b"):
        return None  # a tie or both-bad says nothing about which is preferred
    system, prompt, a, b = kind.pair(json.loads(record.pop("payload")))
    chosen, rejected = (a, b) if choice == "a" else (b, a)
    if conversational:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        pair: dict[str, Any] = {
            "prompt": messages,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
    else:
        pair = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    return pair | record


def preference_pairs(queue_ids: list[int]) -> list[dict[str, Any]]:
    """The queues' TRL preference pairs (plain text: prompt, chosen, rejected, and the record
    they came from), exactly as the TRL export writes them, one an item by majority vote
    (ties, `tie` and `both_bad` give none). ExportInvalid for queues whose items compare
    nothing. Policy training (DPO) reads its pairs here."""
    plan = export_plan(
        ExportSpec(queues=queue_ids, format=ExportFormat.TRL, aggregation=Aggregation.MAJORITY)
    )
    pairs = []
    for record in export_records(plan):
        pair = _preference(record, plan.kind, False)
        if pair is not None:
            pairs.append(pair)
    return pairs
