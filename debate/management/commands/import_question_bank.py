"""`manage.py import_question_bank NAME FILE`: a QuALITY-style JSONL question bank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from debate.research.imports import question_bank_import


class Command(BaseCommand):
    help = "Import a JSONL question bank; bad lines are reported by number, good ones kept."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, name: str, file: Path, **options: Any) -> None:
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
        bank, report = question_bank_import(name=name, raw=file, created_by=None)
        for where, reason in report.errors:
            self.stderr.write(f"{file}: {where}: {reason}")
        self.stdout.write(f"{bank or name}: imported {len(report.imported)} questions")
        if report.errors:
            raise CommandError(f"{len(report.errors)} lines were not imported")
