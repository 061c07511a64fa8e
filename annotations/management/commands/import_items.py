from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.importers import ImportFailed, ImportFormat, format_for_name, items_import
from annotations.models import Queue


def queue_named(name_or_id: str) -> Queue:
    queue = Queue.objects.filter(name=name_or_id).first()
    if queue is None and name_or_id.isdigit():
        queue = Queue.objects.filter(pk=int(name_or_id)).first()
    if queue is None:
        raise CommandError(f"No queue named or numbered {name_or_id!r}.")
    return queue


class Command(BaseCommand):
    help = "Import items into a rating queue from a JSONL or CSV file: all rows or none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("queue", help="the queue's name or id")
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", choices=[fmt.value for fmt in ImportFormat])

    def handle(self, *args: Any, **options: Any) -> None:
        queue = queue_named(options["queue"])
        path: Path = options["path"]
        fmt = options["format"] or format_for_name(path.name)
        if fmt is None:
            raise CommandError("Pass --format: the file name ends in neither .jsonl nor .csv.")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}") from None
        try:
            count = items_import(queue=queue, data=data, fmt=ImportFormat(fmt))
        except ImportFailed as failure:
            raise CommandError("Nothing was imported:\n" + "\n".join(failure.messages)) from None
        self.stdout.write(f"Imported {count} items into {queue.name}.")
