"""Plain per-label JSONL on PostgreSQL: Postgres writes each line and COPY streams them."""

from __future__ import annotations

import json
from typing import IO, Any

from django.db import connection
from django.db.models import F, Func, QuerySet, TextField, Value
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Cast, Coalesce

from annotations.exports import records
from annotations.exports.records import Plan, Progress, _labels, annotator_pseudonym
from annotations.exports.spec import Aggregation, ExportFormat
from annotations.models import Label


def fast_path_applies(plan: Plan) -> bool:
    """Plain per-label JSONL on Postgres: the database can write each line itself."""
    spec = plan.spec
    return (
        connection.vendor == "postgresql"
        and spec.format == ExportFormat.JSONL
        and spec.aggregation == Aggregation.PER_LABEL
        and spec.min_agreement is None
        and not spec.include_ai_labels
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
        # Unknown is null, as the general path writes it (a NULL would void the whole line).
        "time_spent_ms": Coalesce(text(F("time_spent_ms")), Value("null")),
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


def write_fast(plan: Plan, out: IO[bytes], on_labels: Progress | None) -> int:
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
            if len(rows) >= records.CHUNK_ROWS:
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
