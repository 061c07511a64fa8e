"""Files in: NYU rooms and metadata, Arbiter exports, QuALITY-style question banks.

Each file (or JSONL line) is parsed and validated whole before anything is written; a bad one
is reported by name (and line) with its reason, and the rest still import.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import IO, Annotated, Any

from django.contrib.auth.models import User
from django.db import transaction
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.text import StoredText
from debate.models import BankQuestion, Debate, Protocol, QuestionBank
from debate.nyu import RecordError, metadata_record, room_record
from debate.records import (
    Answer,
    DebateRecord,
    Index,
    Passage,
    Question,
    RecordSetting,
    answers_check,
    validation_reason,
)
from debate.research.records import debate_record_upsert
from llm.models import ModelConfig

MAX_FILE_BYTES = 50 * 1024 * 1024

# An upload to import: its bytes, a path, or an open binary file (an upload the page received:
# read one at a time, and a JSONL file line by line, so no import holds every file at once).
Source = bytes | Path | IO[bytes]


@dataclass
class ImportReport:
    """What a debate import did, counted by debate: a room whose metadata line and room file
    both came is one debate (created, or updated if it existed before)."""

    created: list[str] = field(default_factory=list)  # debate names, in import order
    updated: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file or file:line, reason)

    def add(self, name: str, *, created: bool) -> None:
        if created:
            self.created.append(name)
        elif name not in self._seen:
            self.updated.append(name)
        self._seen.add(name)

    @property
    def imported(self) -> list[str]:
        return self.created + self.updated

    def __post_init__(self) -> None:
        self._seen: set[str] = set(self.created) | set(self.updated)


@dataclass
class BankImportReport:
    imported: list[str] = field(default_factory=list)  # "line N"
    errors: list[tuple[str, str]] = field(default_factory=list)  # ("line N", reason)


def _json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordError(f"not JSON ({error})") from None


def _record_of(data: Any, *, name: str) -> DebateRecord:
    """Whatever one JSON object is: an Arbiter record, an NYU metadata line or an NYU room."""
    try:
        return _parse(data, name=name)
    except RecordError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as error:
        # A value of the wrong type somewhere deep in the file: untrusted input, not a bug.
        raise RecordError(f"not the NYU schema ({type(error).__name__}: {error})") from None


def _parse(data: Any, *, name: str) -> DebateRecord:
    if isinstance(data, dict) and "format" in data:
        try:
            return DebateRecord.model_validate(data)
        except ValidationError as error:
            raise RecordError(
                f"not an {data.get('format')!r} record: {validation_reason(error)}"
            ) from None
    if isinstance(data, dict) and "roleAssignments" in data:
        return metadata_record(data)
    existing = Debate.objects.filter(room_name=name).values("human_debaters", "protocol").first()
    setting = None
    if existing is not None:
        setting = RecordSetting(
            is_human=existing["human_debaters"],
            is_debate=existing["protocol"] == Protocol.DEBATE,
        )
    return room_record(data, name=name, setting=setting)


def _size(source: Source) -> int:
    if isinstance(source, bytes):
        return len(source)
    if isinstance(source, Path):
        return source.stat().st_size
    size = getattr(source, "size", None)  # Django's UploadedFile knows it
    if isinstance(size, int):
        return size
    position = source.seek(0, 2)
    source.seek(0)
    return position


def _read(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, Path):
        return source.read_bytes()
    source.seek(0)
    return source.read()


def _lines(source: Source) -> Iterator[bytes]:
    """A JSONL file's lines, read as they come (\n, \r\n or \r ends a line)."""
    if isinstance(source, bytes):
        yield from source.splitlines()
    elif isinstance(source, Path):
        with source.open("rb") as file:
            for line in file:
                yield from line.splitlines()
    else:
        source.seek(0)
        for line in source:
            yield from line.splitlines()


def debate_files_import(*, files: Sequence[tuple[str, Source]]) -> ImportReport:
    """Import debate files: `.jsonl` (NYU metadata lines or Arbiter export lines, one debate
    a line) and `.json` (one NYU room, named by its file, or one Arbiter record). Metadata
    files go first, so a room imported alongside its metadata line keeps its setting. Files
    are read one at a time, JSONL line by line; each record is written in its own transaction."""
    report = ImportReport()
    configs: dict[str, ModelConfig | None] = {}
    ordered = sorted(files, key=lambda item: (not item[0].endswith(".jsonl"), item[0]))
    for filename, source in ordered:
        if _size(source) > MAX_FILE_BYTES:
            report.errors.append((filename, f"larger than {MAX_FILE_BYTES // 2**20} MB"))
            continue
        if filename.endswith(".jsonl"):
            for number, line in enumerate(_lines(source), start=1):
                if not line.strip():
                    continue
                try:
                    record = _record_of(_json(line), name="")
                except RecordError as error:
                    report.errors.append((f"{filename}:{number}", str(error)))
                    continue
                _debate, created = debate_record_upsert(record=record, configs=configs)
                report.add(record.name, created=created)
            continue
        name = PurePath(filename).stem
        try:
            record = _record_of(_json(_read(source)), name=name)
        except RecordError as error:
            report.errors.append((filename, str(error)))
            continue
        _debate, created = debate_record_upsert(record=record, configs=configs)
        report.add(record.name, created=created)
    return report


class BankLine(BaseModel):
    """One question of a QuALITY-style JSONL bank. `gold_label` is QuALITY's 1-based gold.
    The question, options and passage follow the rules of a debate's (debate.records)."""

    model_config = ConfigDict(extra="ignore")

    question: Question
    options: list[Answer] = Field(min_length=2, max_length=10)
    passage: Passage = ""
    article: Passage = ""
    title: Annotated[StoredText, Field(max_length=500)] = ""
    gold_index: Index | None = None
    gold_label: Annotated[Index, Field(ge=1)] | None = None
    distractor_index: Index | None = None

    @model_validator(mode="after")
    def _check(self) -> BankLine:
        answers_check(self.options)
        if not (self.passage or self.article):
            raise ValueError("no passage (or article)")
        gold = self.gold
        if gold is None:
            raise ValueError("no gold option (gold_index, or QuALITY's 1-based gold_label)")
        if gold >= len(self.options):
            raise ValueError(f"gold option {gold} is not one of the {len(self.options)} options")
        if self.distractor_index is not None and (
            self.distractor_index >= len(self.options) or self.distractor_index == gold
        ):
            raise ValueError("the distractor is not another of the options")
        return self

    @property
    def gold(self) -> int | None:
        if self.gold_index is not None:
            return self.gold_index
        return None if self.gold_label is None else self.gold_label - 1


def question_bank_import(
    *, name: str, raw: Source, created_by: User | None, description: str = ""
) -> tuple[QuestionBank | None, BankImportReport]:
    """Add (or replace, by line number) the questions of a JSONL bank, read line by line.
    Lines are checked first; good lines are written in one transaction, bad ones reported
    with their number."""
    report = BankImportReport()
    rows: list[tuple[int, BankLine]] = []
    for number, line in enumerate(_lines(raw), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, BankLine.model_validate(_json(line))))
        except RecordError as error:
            report.errors.append((f"line {number}", str(error)))
        except ValidationError as error:
            report.errors.append((f"line {number}", validation_reason(error)))
    if not rows:
        return None, report
    with transaction.atomic():
        bank, _created = QuestionBank.objects.get_or_create(
            name=name, defaults={"created_by": created_by, "description": description}
        )
        BankQuestion.objects.filter(bank=bank, line__in=[n for n, _ in rows]).delete()
        BankQuestion.objects.bulk_create(
            BankQuestion(
                bank=bank, line=number, title=row.title, passage=row.passage or row.article,
                question=row.question, options=row.options, gold_index=row.gold or 0,
                distractor_index=row.distractor_index,
            )
            for number, row in rows
        )  # fmt: skip
    report.imported = [f"line {number}" for number, _ in rows]
    return bank, report
