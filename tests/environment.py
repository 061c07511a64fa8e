"""Loaded with `-p tests.environment` before Django's settings are read.

Tests get their own var/ folder, so a running `make run` (its Redis, its worker, its SQLite
file) never sees test traffic.
"""

import os
from pathlib import Path

os.environ.setdefault(
    "ARBITER_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test")
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
