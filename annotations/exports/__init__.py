"""Label exports: JSONL, CSV, Parquet and TRL's preference format, per label or by majority.

Rows stream from a server-side cursor (`.iterator(chunk_size=…)`, a named cursor on
Postgres) ordered by item, so majority votes and agreement filters need only the labels of
one item in memory at a time: memory stays flat whatever the export's size. Plain per-label
JSONL on Postgres takes a fast path instead: Postgres writes each line and COPY streams them.

spec: what to export; records: the rows; writers: the files; fast: the PostgreSQL path.
"""

from annotations.exports.records import (
    CHUNK_ROWS,
    PROGRESS_EVERY,
    Plan,
    annotator_pseudonym,
    export_plan,
    export_records,
    export_size,
)
from annotations.exports.spec import (
    AGGREGATION_NAMES,
    CONTENT_TYPES,
    EXTENSIONS,
    FORMAT_NAMES,
    Aggregation,
    ExportFormat,
    ExportInvalid,
    ExportSpec,
)
from annotations.exports.writers import FORMULA_STARTS, csv_cell, export_write

__all__ = [
    "AGGREGATION_NAMES",
    "CHUNK_ROWS",
    "CONTENT_TYPES",
    "EXTENSIONS",
    "FORMAT_NAMES",
    "FORMULA_STARTS",
    "PROGRESS_EVERY",
    "Aggregation",
    "ExportFormat",
    "ExportInvalid",
    "ExportSpec",
    "Plan",
    "annotator_pseudonym",
    "csv_cell",
    "export_plan",
    "export_records",
    "export_size",
    "export_write",
]
