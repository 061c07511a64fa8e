"""Files in: NYU rooms and metadata, Arbiter exports, QuALITY-style question banks.

Each file (or JSONL line) is parsed and validated whole before anything is written; a bad one
is reported by name (and line) with its reason, and the rest still import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from debate.models import BankQuestion, Debate, Protocol, QuestionBank
from debate.nyu import RecordError, metadata_record, room_record
from debate.records import DebateRecord, RecordSetting
from debate.research.records import debate_record_upsert
from llm.models import ModelConfig

MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)  # debate names, or question lines
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file or file:line, reason)


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
            first = error.errors()[0]
            place = ".".join(str(part) for part in first["loc"])
            raise RecordError(
                f"not an {data.get('format')!r} record: {place}: {first['msg']}"
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


def debate_files_import(*, files: Iterable[tuple[str, bytes]]) -> ImportReport:
    """Import debate files: `.jsonl` (NYU metadata lines or Arbiter export lines, one debate
    a line) and `.json` (one NYU room, named by its file, or one Arbiter record). Metadata
    files go first, so a room imported alongside its metadata line keeps its setting."""
    report = ImportReport()
    configs: dict[str, ModelConfig | None] = {}
    ordered = sorted(files, key=lambda item: (not item[0].endswith(".jsonl"), item[0]))
    for filename, raw in ordered:
        if len(raw) > MAX_FILE_BYTES:
            report.errors.append((filename, f"larger than {MAX_FILE_BYTES // 2**20} MB"))
            continue
        if filename.endswith(".jsonl"):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                report.errors.append((filename, "not UTF-8 text"))
                continue
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = _record_of(_json(line), name="")
                except RecordError as error:
                    report.errors.append((f"{filename}:{number}", str(error)))
                    continue
                debate_record_upsert(record=record, configs=configs)
                report.imported.append(record.name)
            continue
        name = PurePath(filename).stem
        try:
            record = _record_of(_json(raw), name=name)
        except RecordError as error:
            report.errors.append((filename, str(error)))
            continue
        debate_record_upsert(record=record, configs=configs)
        report.imported.append(record.name)
    return report


class BankLine(BaseModel):
    """One question of a QuALITY-style JSONL bank. `gold_label` is QuALITY's 1-based gold."""

    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1, max_length=10_000)
    options: list[str] = Field(min_length=2, max_length=10)
    passage: str = Field(default="", max_length=1_000_000)
    article: str = Field(default="", max_length=1_000_000)
    title: str = Field(default="", max_length=500)
    gold_index: int | None = Field(default=None, ge=0)
    gold_label: int | None = Field(default=None, ge=1)
    distractor_index: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> BankLine:
        for text in [self.question, self.passage, self.article, self.title, *self.options]:
            if "\x00" in text:
                raise ValueError("text contains a NUL character")
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
    *, name: str, raw: bytes, created_by: User | None, description: str = ""
) -> tuple[QuestionBank | None, ImportReport]:
    """Add (or replace, by line number) the questions of a JSONL bank. Lines are checked
    first; good lines are written in one transaction, bad ones reported with their number."""
    report = ImportReport()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        report.errors.append((name, "not UTF-8 text"))
        return None, report
    rows: list[tuple[int, BankLine]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, BankLine.model_validate(_json(line))))
        except RecordError as error:
            report.errors.append((f"line {number}", str(error)))
        except ValidationError as error:
            first = error.errors()[0]
            place = ".".join(str(part) for part in first["loc"])
            reason = f"{place}: {first['msg']}" if place else first["msg"]
            report.errors.append((f"line {number}", reason.removeprefix("Value error, ")))
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
