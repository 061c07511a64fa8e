"""The NYU 2023 sample shipped in debate/data/, and readers for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from django.conf import settings

from debate.models import Debate, JudgeTurn, Speech, Verdict
from debate.research.records import debates_export_lines
from tests.factories import DebateFactory

NYU_DIR = Path(settings.BASE_DIR) / "debate" / "data" / "nyu-debate-2023"
METADATA = NYU_DIR / "debates-metadata.jsonl"
ROOMS = sorted((NYU_DIR / "debates").glob("*.json"))


def nyu_files(rooms: int | None = None) -> list[tuple[str, bytes]]:
    files = [(METADATA.name, METADATA.read_bytes())]
    files += [(path.name, path.read_bytes()) for path in ROOMS[:rooms]]
    return files


def arbiter_record(**changes: Any) -> dict[str, Any]:
    """An Arbiter export record of a native debate, judged, with one speech quoting its
    passage; the debate itself deleted. `changes` replace top-level fields."""
    debate = cast(Debate, DebateFactory(status="judged", current_round=1, max_rounds=1))
    JudgeTurn.objects.create(debate=debate, round=0, probability_a=50)
    JudgeTurn.objects.create(debate=debate, round=1, probability_a=70, action="end")
    Speech.objects.create(
        debate=debate, round=1, side="a", status="done",
        text="A says <quote>door green</quote>.",
        quotes=[{"text": "door green", "verified": True, "over_limit": False}],
    )  # fmt: skip
    Verdict.objects.create(debate=debate, kind="human", judge_name="j", probability_a=70)
    record = json.loads(next(debates_export_lines(Debate.objects.filter(pk=debate.pk))))
    debate.delete()
    for key, value in changes.items():
        record[key] = value
    return record
