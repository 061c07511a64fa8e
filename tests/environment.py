"""Loaded with `-p tests.environment` before Django's settings are read.

Tests get their own var/ folder, so a running `make run` (its Redis, its worker, its SQLite
file) never sees test traffic.
"""

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
os.environ.setdefault("ARBITER_VAR_DIR", str(PROJECT_DIR / "var" / "test"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Share the converted bundled model with `make run`: converting it takes ~25 s.
os.environ.setdefault("LLM_MODELS_DIR", str(PROJECT_DIR / "var" / "models"))
