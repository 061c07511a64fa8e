"""JSONL and CSV imports: every row validated first, then all stored or none.

A row holds the kind's payload fields (flat, or nested under "payload"), and optionally
`external_id` and `gold` (the expected label as a plain value: "a"/"b"/"tie"/"both_bad" for
pairwise and debate queues, 1–7 for Likert and tree-node queues). CSV suits flat payloads
(pairwise, Likert); debate transcripts need JSONL.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from annotations.kinds import ItemKind, validation_message
from annotations.models import Item, Queue
from annotations.services import NewItem, queue_items_create
from core.text import text_problem

MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_IMPORT_ROWS = 100_000
# Enough to fix a file by; a file with more problems is probably the wrong file.
MAX_REPORTED_ERRORS = 50
RESERVED = frozenset({"gold", "external_id", "payload"})


class ImportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportFailed(Exception):
    """Nothing was imported; `errors` names each bad row by its line number."""

    def __init__(self, errors: list[RowError], *, truncated: bool = False) -> None:
        self.errors = errors
        self.truncated = truncated
        super().__init__("; ".join(str(error) for error in errors))

    @property
    def messages(self) -> list[str]:
        lines = [str(error) for error in self.errors]
        if self.truncated:
            lines.append(f"(only the first {MAX_REPORTED_ERRORS} problems are listed)")
        return lines


class UploadRefused(Exception):
    """An upload refused before it is read: too large, or no format to read it in. `field`
    names the form field the page shows it on ("file" or "format")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def upload_format(*, size: int | None, name: str, fmt: str | None) -> ImportFormat:
    """The format to read an upload in; UploadRefused for a file over MAX_IMPORT_BYTES or one
    whose format neither `fmt` nor its name gives. The page and the API both ask this."""
    if size and size > MAX_IMPORT_BYTES:
        raise UploadRefused(
            "file", f"The file is {size:,} bytes; the limit is {MAX_IMPORT_BYTES:,}."
        )
    found = ImportFormat(fmt) if fmt else format_for_name(name)
    if found is None:
        raise UploadRefused(
            "format",
            "Name the format (jsonl or csv): the file name ends in neither .jsonl nor .csv.",
        )
    return found


def format_for_name(file_name: str) -> ImportFormat | None:
    suffix = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    return {"jsonl": ImportFormat.JSONL, "ndjson": ImportFormat.JSONL, "csv": ImportFormat.CSV}.get(
        suffix
    )


def _row_item(kind: ItemKind, row: dict[str, Any]) -> NewItem:
    """One row to a NewItem; raises ValueError with a readable message."""
    payload_data = (
        row["payload"]
        if "payload" in row
        else {key: value for key, value in row.items() if key not in RESERVED}
    )
    try:
        payload = kind.payload(payload_data)
    except PydanticValidationError as error:
        raise ValueError(validation_message(error)) from None
    gold_raw = row.get("gold")
    gold = None
    if gold_raw not in (None, ""):
        try:
            if isinstance(gold_raw, dict):
                gold = kind.value(gold_raw)
            else:
                gold = kind.value_from_scalar(gold_raw)
        except PydanticValidationError as error:
            raise ValueError(f"gold: {validation_message(error)}") from None
    external_id = row.get("external_id") or ""
    if not isinstance(external_id, str | int) or len(str(external_id)) > 200:
        raise ValueError("external_id must be a string of at most 200 characters")
    if isinstance(external_id, str) and (problem := text_problem(external_id)):
        raise ValueError(f"external_id: {problem}")
    return NewItem(payload=payload, gold=gold, external_id=str(external_id))


def _jsonl_rows(text: str) -> Any:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            yield number, None, f"not valid JSON ({error.msg} at column {error.colno})"
            continue
        if not isinstance(row, dict):
            yield number, None, "expected a JSON object"
            continue
        yield number, row, ""


def _csv_rows(text: str) -> Any:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    if not reader.fieldnames:
        return
    while True:
        number = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield number, None, f"not valid CSV ({error})"
            return
        if None in row:
            yield number, None, "more cells than the header has columns"
            continue
        # Blank cells are absent fields, so optional fields take their defaults.
        yield number, {key: value for key, value in row.items() if value not in ("", None)}, ""


def items_parse(*, queue: Queue, data: bytes, fmt: ImportFormat) -> list[NewItem]:
    """Validate a whole file; raises ImportFailed listing bad rows by line number."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFailed(
            [RowError(0, f"the file is {len(data):,} bytes; the limit is {MAX_IMPORT_BYTES:,}")]
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ImportFailed([RowError(line, "not UTF-8 text")]) from None
    kind = queue.item_kind
    rows = _jsonl_rows(text) if fmt == ImportFormat.JSONL else _csv_rows(text)
    items: list[NewItem] = []
    lines: list[int] = []
    errors: list[RowError] = []
    truncated = False
    for number, row, problem in rows:
        if len(items) + len(errors) >= MAX_IMPORT_ROWS:
            errors.append(RowError(number, f"more than {MAX_IMPORT_ROWS:,} rows in one file"))
            break
        if not problem:
            try:
                items.append(_row_item(kind, row))
                lines.append(number)
                continue
            except ValueError as error:
                problem = str(error)
        if len(errors) >= MAX_REPORTED_ERRORS:
            truncated = True
            break
        errors.append(RowError(number, problem))
    if errors:
        raise ImportFailed(errors, truncated=truncated)
    if not items:
        raise ImportFailed([RowError(0, "the file has no rows")])
    _refuse_repeated_external_ids(queue, items, lines)
    return items


def _refuse_repeated_external_ids(queue: Queue, items: list[NewItem], lines: list[int]) -> None:
    """An external id names one item of a queue: twice in the file, or already in the queue,
    is an error on the row's line."""
    first: dict[str, int] = {}
    errors: list[RowError] = []
    for number, item in zip(lines, items, strict=True):
        if not item.external_id:
            continue
        if item.external_id in first:
            message = f"external_id {item.external_id!r} repeats line {first[item.external_id]}"
            errors.append(RowError(number, message))
        first.setdefault(item.external_id, number)
    present = Item.objects.filter(queue=queue, external_id__in=list(first))
    for external_id in sorted(present.values_list("external_id", flat=True)):
        message = f"external_id {external_id!r} is already in this queue"
        errors.append(RowError(first[external_id], message))
    if errors:
        raise ImportFailed(
            errors[:MAX_REPORTED_ERRORS], truncated=len(errors) > MAX_REPORTED_ERRORS
        )


def items_import(*, queue: Queue, data: bytes, fmt: ImportFormat) -> int:
    """Parse and store a file's items in one transaction; nothing is stored on any error."""
    return queue_items_create(queue=queue, items=items_parse(queue=queue, data=data, fmt=fmt))
