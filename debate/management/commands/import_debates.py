"""`manage.py import_debates PATH…`: NYU rooms, metadata, Arbiter exports (files or folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from debate.research.imports import debate_files_import


class Command(BaseCommand):
    help = (
        "Import debates: NYU room files (<room>.json), debates-metadata.jsonl, or Arbiter "
        "exports (.jsonl). Folders are searched for *.json and *.jsonl. Each bad file is "
        "named with its reason; the rest still import. Re-importing a room updates it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)

    def handle(self, *args: Any, paths: list[Path], **options: Any) -> None:
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                files += sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl"))
            elif path.is_file():
                files.append(path)
            else:
                raise CommandError(f"{path}: no such file or folder")
        report = debate_files_import(files=[(str(p), p) for p in files])
        for where, reason in report.errors:
            self.stderr.write(f"{where}: {reason}")
        self.stdout.write(
            f"imported {len(report.imported)} debates ({len(report.created)} created, "
            f"{len(report.updated)} updated); {len(report.errors)} failed"
        )
        if report.errors:
            raise CommandError(f"{len(report.errors)} files or lines were not imported")
