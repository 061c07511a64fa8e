"""Label exports: JSONL, CSV, Parquet and TRL's preference format, per label or by majority.

Rows stream from a server-side cursor (`.iterator(chunk_size=…)`, a named cursor on
Postgres) ordered by item, so majority votes and agreement filters need only the labels of
one item in memory at a time: memory stays flat whatever the export's size. Plain per-label
JSONL on Postgres takes a fast path instead: Postgres writes each line and COPY streams them.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from itertools import groupby
from typing import IO, Any

from django.db import connection
from django.db.models import Count, F, Func, Q, QuerySet, TextField, Value
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KT, KeyTransform
from django.db.models.functions import Cast, Coalesce
from django.utils.crypto import salted_hmac
from pydantic import BaseModel, ConfigDict, Field

from annotations.kinds import ItemKind, item_kind
from annotations.models import Label, Queue
from core.types import DbId

CHUNK_ROWS = 2000
PROGRESS_EVERY = 5000


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"
    TRL = "trl"
    TRL_CONVERSATIONAL = "trl_conversational"


EXTENSIONS = {
    ExportFormat.JSONL: "jsonl",
    ExportFormat.CSV: "csv",
    ExportFormat.PARQUET: "parquet",
    ExportFormat.TRL: "jsonl",
    ExportFormat.TRL_CONVERSATIONAL: "jsonl",
}
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}


class Aggregation(StrEnum):
    PER_LABEL = "per_label"
    MAJORITY = "majority"


class ExportSpec(BaseModel):
    """What to export. Stored on ExportJob.spec; built by ExportForm, the API and the command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queues: list[DbId] = Field(min_length=1, max_length=50)
    format: ExportFormat = ExportFormat.JSONL
    aggregation: Aggregation = Aggregation.PER_LABEL
    since: datetime | None = None
    until: datetime | None = None
    # Items whose most common label has less than this share of their labels are left out.
    min_agreement: float | None = Field(default=None, ge=0.0, le=1.0)
    # Annotators whose gold accuracy is below this are left out (those with no gold are kept).
    min_gold_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    include_gold: bool = False
    # CSV only; see csv_cell.
    csv_raw: bool = Field(
        default=False,
        description="CSV only: write cells exactly as stored. By default a text cell that a"
        " spreadsheet would run as a formula (starting with = + - @, a tab or a carriage"
        " return) gets a leading ' (OWASP CSV injection).",
    )


class ExportInvalid(Exception):
    """A spec that cannot be carried out: 404 for queues that do not exist, 409 for queues that
    cannot be exported together or in that format, or a window that ends before it starts
    (a rule between fields that the spec's JSON schema cannot state)."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


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
        raise ExportInvalid("TRL's preference format needs pairwise or debate queues.")
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
    time_spent_ms: int
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


def export_records(plan: Plan, *, on_labels: Progress | None = None) -> Iterator[dict[str, Any]]:
    """Rows as dicts, in item order. `on_labels(n)` is told how many labels were read."""
    spec, kind = plan.spec, plan.kind
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
                yield base | {
                    "label": label.label,
                    "annotator": annotator_pseudonym(label.annotator_id),
                    "labelled_at": _iso(label.created_at),
                    "time_spent_ms": label.time_spent_ms,
                    "payload": label.payload,
                }


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


# --- writers --------------------------------------------------------------------------------
# OWASP "CSV injection": spreadsheets run a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a string starting with a formula character gets
    a leading single quote, as OWASP recommends (Excel, LibreOffice and Google Sheets hide the
    quote and show the rest as text). Numbers are left alone: -3 is a number, not a formula.
    JSONL, Parquet and TRL exports never pass through here: training reads them byte for byte.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _flat(record: dict[str, Any], payload_fields: list[str]) -> dict[str, Any]:
    payload = json.loads(record.pop("payload"))
    for name in payload_fields:
        value = payload.get(name)
        record[name] = value if isinstance(value, str | int | float | None) else json.dumps(value)
    if "annotators" in record:
        record["annotators"] = " ".join(record["annotators"])
    return record


def _columns(plan: Plan) -> list[str]:
    fields = ["queue", "item_id", "external_id", "label"]
    if plan.spec.aggregation == Aggregation.MAJORITY:
        fields += ["n_labels", "agreement", "annotators", "first_labelled_at", "last_labelled_at"]
    else:
        fields += ["annotator", "labelled_at", "time_spent_ms"]
    return fields + list(plan.kind.payload_model.model_fields)


def _parquet_schema(plan: Plan, columns: list[str]) -> Any:
    import pyarrow as pa

    types = {
        "item_id": pa.int64(),
        "label": pa.int64() if plan.kind.value_field == "rating" else pa.string(),
        "n_labels": pa.int64(),
        "agreement": pa.float64(),
        "time_spent_ms": pa.int64(),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in columns])


def fast_path_applies(plan: Plan) -> bool:
    """Plain per-label JSONL on Postgres: the database can write each line itself."""
    spec = plan.spec
    return (
        connection.vendor == "postgresql"
        and spec.format == ExportFormat.JSONL
        and spec.aggregation == Aggregation.PER_LABEL
        and spec.min_agreement is None
    )


def _fast_jsonl_query(plan: Plan) -> QuerySet[Label, str]:
    """The same records as export_records (per label), each built by Postgres as one line of
    JSON text. Pseudonyms and queue names are computed here and passed in as small JSON maps
    whose values are JSON strings already."""
    labels = _labels(plan)
    annotators = labels.order_by().values_list("annotator_id", flat=True).distinct()
    pseudonyms = {str(pk): json.dumps(annotator_pseudonym(pk)) for pk in annotators}
    names = {str(pk): json.dumps(name, ensure_ascii=False) for pk, name in plan.queue_names.items()}

    def text(expression: Any) -> Cast:
        return Cast(expression, TextField())

    def looked_up(column: str, mapping: dict[str, str]) -> RawSQL:
        # A label by an annotator first seen after the map was read gets null there (as with
        # json_build_object before), rather than turning its whole line into NULL.
        sql = f"coalesce(%s::jsonb ->> annotations_label.{column}::text, 'null')"
        return RawSQL(sql, (json.dumps(mapping, ensure_ascii=False),), output_field=TextField())

    fields = {
        "queue": looked_up("queue_id", names),
        "item_id": text(F("item_id")),
        "external_id": text(Func(F("item__external_id"), function="to_json")),
        "label": Coalesce(text(KeyTransform(plan.kind.value_field, "value")), Value("null")),
        "annotator": looked_up("annotator_id", pseudonyms),
        # JSON text already: quoted, and no character in it needs escaping.
        "labelled_at": Func(
            F("created_at"),
            # In to_char's pattern \" writes a double quote and "T" a T.
            template=r"""to_char(%(expressions)s AT TIME ZONE 'UTC',"""
            r""" '\"YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\"')""",
            output_field=TextField(),
        ),
        "time_spent_ms": text(F("time_spent_ms")),
        "payload": text(F("item__payload")),
    }
    # One concatenation of text pieces that are JSON already: json_build_object works out how
    # to write each argument's type again on every row, and took twice as long (Postgres 15).
    parts: list[Any] = []
    for key, expression in fields.items():
        parts += [Value(("{" if not parts else ", ") + json.dumps(key) + ": "), expression]
    parts.append(Value("}"))
    line = Func(*parts, template="(%(expressions)s)", arg_joiner=" || ", output_field=TextField())
    return labels.order_by("item_id", "id").annotate(line=line).values_list("line", flat=True)


# COPY's CSV format, with a delimiter and a quote character that JSON text never holds raw (it
# escapes every control character), sends each line as it is plus a newline: nothing to
# unescape. Were a value ever to hold either character, COPY would quote it: see
# _copy_csv_unquote.
_COPY_OPTIONS = "FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02'"
_COPY_QUOTE = b"\x02"


def _copy_csv_unquote(row: bytes) -> bytes:
    """One row of COPY's CSV output (one column, never NULL) back to the value and a newline."""
    if row.startswith(_COPY_QUOTE):
        return row[1:-2].replace(_COPY_QUOTE * 2, _COPY_QUOTE) + b"\n"
    return row


def _write_fast(plan: Plan, out: IO[bytes], on_labels: Progress | None) -> int:
    """Postgres writes every line and COPY streams them: Python only joins blocks of
    CHUNK_ROWS rows and writes them, and reports progress once a block."""
    sql, params = _fast_jsonl_query(plan).query.sql_with_params()
    # COPY takes no bound parameters: Postgres's operations inline them as literals.
    postgres: Any = connection.ops
    statement = f"COPY ({postgres.compose_sql(sql, params)}) TO STDOUT ({_COPY_OPTIONS})"
    written = 0
    rows: list[bytes] = []
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        # Copy.read() returns one row per call: Postgres sends one message per row.
        for row in copy:
            rows.append(row)
            if len(rows) >= CHUNK_ROWS:
                written += _write_rows(rows, out, on_labels)
        written += _write_rows(rows, out, on_labels)
    return written


def _write_rows(rows: list[bytes], out: IO[bytes], on_labels: Progress | None) -> int:
    block = b"".join(rows)
    if _COPY_QUOTE in block:
        block = b"".join(_copy_csv_unquote(bytes(row)) for row in rows)
    out.write(block)
    count = len(rows)
    rows.clear()
    if on_labels and count:
        on_labels(count)
    return count


def export_write(plan: Plan, out: IO[bytes], *, on_labels: Progress | None = None) -> int:
    """Write the export to a binary stream; returns the number of rows written."""
    spec = plan.spec
    if fast_path_applies(plan):
        return _write_fast(plan, out, on_labels)
    records = export_records(plan, on_labels=on_labels)
    written = 0
    if spec.format in (ExportFormat.JSONL, ExportFormat.TRL, ExportFormat.TRL_CONVERSATIONAL):
        conversational = spec.format == ExportFormat.TRL_CONVERSATIONAL
        lines: list[bytes] = []
        for record in records:
            if spec.format == ExportFormat.JSONL:
                # The payload is JSON text already: splice it in as the last key.
                payload = record.pop("payload")
                head = json.dumps(record, ensure_ascii=False)
                lines.append(f'{head[:-1]}, "payload": {payload}}}\n'.encode())
            else:
                pair = _preference(record, plan.kind, conversational)
                if pair is None:
                    continue
                lines.append(json.dumps(pair, ensure_ascii=False).encode() + b"\n")
            written += 1
            if len(lines) >= CHUNK_ROWS:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)
        return written
    columns = _columns(plan)
    payload_fields = list(plan.kind.payload_model.model_fields)
    if spec.format == ExportFormat.CSV:
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        for record in records:
            row = _flat(record, payload_fields)
            if not spec.csv_raw:
                row = {name: csv_cell(value) for name, value in row.items()}
            writer.writerow(row)
            written += 1
        text.flush()
        text.detach()
        return written
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema(plan, columns)
    with pq.ParquetWriter(out, schema) as parquet:
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append(_flat(record, payload_fields))
            if len(batch) >= CHUNK_ROWS:
                parquet.write_table(pa.Table.from_pylist(batch, schema=schema))
                written += len(batch)
                batch.clear()
        if batch or not written:
            parquet.write_table(pa.Table.from_pylist(batch, schema=schema))
            written += len(batch)
    return written
