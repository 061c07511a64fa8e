from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from pydantic import ValidationError

from annotations.exports import (
    Aggregation,
    ExportFormat,
    ExportInvalid,
    ExportSpec,
    export_plan,
    export_write,
)
from annotations.kinds import validation_message
from annotations.management.commands.import_items import queue_named


class Command(BaseCommand):
    help = "Export labels (JSONL, CSV, Parquet or TRL preference pairs), streamed to a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", action="append", required=True, help="name or id; repeat")
        parser.add_argument("--format", choices=[f.value for f in ExportFormat], default="jsonl")
        parser.add_argument(
            "--aggregation", choices=[a.value for a in Aggregation], default="per_label"
        )
        parser.add_argument("--since", type=datetime.fromisoformat)
        parser.add_argument("--until", type=datetime.fromisoformat)
        parser.add_argument("--min-agreement", type=float)
        parser.add_argument("--min-gold-accuracy", type=float)
        parser.add_argument("--include-gold", action="store_true")
        parser.add_argument("--output", "-o", type=Path, help="a file; default standard output")

    def handle(self, *args: Any, **options: Any) -> None:
        queues = [queue_named(name).pk for name in options["queue"]]
        try:
            spec = ExportSpec(
                queues=queues,
                format=options["format"],
                aggregation=options["aggregation"],
                since=options["since"],
                until=options["until"],
                min_agreement=options["min_agreement"],
                min_gold_accuracy=options["min_gold_accuracy"],
                include_gold=options["include_gold"],
            )
            plan = export_plan(spec)
        except ValidationError as error:
            raise CommandError(validation_message(error)) from None
        except ExportInvalid as error:
            raise CommandError(error.message) from None
        output: Path | None = options["output"]
        if output is None:
            rows = export_write(plan, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            partial = output.with_name(output.name + ".part")
            with partial.open("wb") as out:
                rows = export_write(plan, out)
            partial.replace(output)
        self.stderr.write(f"Exported {rows} rows.")
