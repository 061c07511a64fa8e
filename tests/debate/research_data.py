"""The NYU 2023 sample shipped in debate/data/, and readers for tests."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

NYU_DIR = Path(settings.BASE_DIR) / "debate" / "data" / "nyu-debate-2023"
METADATA = NYU_DIR / "debates-metadata.jsonl"
ROOMS = sorted((NYU_DIR / "debates").glob("*.json"))


def nyu_files(rooms: int | None = None) -> list[tuple[str, bytes]]:
    files = [(METADATA.name, METADATA.read_bytes())]
    files += [(path.name, path.read_bytes()) for path in ROOMS[:rooms]]
    return files
