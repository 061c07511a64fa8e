"""The file writers: JSONL, TRL, CSV (spreadsheet-safe by default) and Parquet."""

from __future__ import annotations

import csv
import io
import json
from typing import IO, Any

from annotations.exports import fast, records
from annotations.exports.records import Plan, Progress, _preference, export_records
from annotations.exports.spec import Aggregation, ExportFormat

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
    if record.get("provenance") is not None:
        record["provenance"] = json.dumps(record["provenance"], ensure_ascii=False)
    return record


def _columns(plan: Plan) -> list[str]:
    fields = ["queue", "item_id", "external_id", "label"]
    if plan.spec.aggregation == Aggregation.MAJORITY:
        fields += ["n_labels", "agreement", "annotators", "first_labelled_at", "last_labelled_at"]
    else:
        fields += ["annotator", "labelled_at", "time_spent_ms"]
        if plan.spec.include_ai_labels:
            fields += ["source", "provenance"]
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


def export_write(plan: Plan, out: IO[bytes], *, on_labels: Progress | None = None) -> int:
    """Write the export to a binary stream; returns the number of rows written."""
    spec = plan.spec
    if fast.fast_path_applies(plan):
        return fast.write_fast(plan, out, on_labels)
    rows = export_records(plan, on_labels=on_labels)
    written = 0
    if spec.format in (ExportFormat.JSONL, ExportFormat.TRL, ExportFormat.TRL_CONVERSATIONAL):
        conversational = spec.format == ExportFormat.TRL_CONVERSATIONAL
        lines: list[bytes] = []
        for record in rows:
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
            if len(lines) >= records.CHUNK_ROWS:
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
        for record in rows:
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
        for record in rows:
            batch.append(_flat(record, payload_fields))
            if len(batch) >= records.CHUNK_ROWS:
                parquet.write_table(pa.Table.from_pylist(batch, schema=schema))
                written += len(batch)
                batch.clear()
        if batch or not written:
            parquet.write_table(pa.Table.from_pylist(batch, schema=schema))
            written += len(batch)
    return written
