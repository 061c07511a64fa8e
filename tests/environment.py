"""Loaded with `-p tests.environment` before Django's settings are read.

Each test session gets its own var/ folder, so neither a running `make run` nor a second test
session (its Redis socket, its worker, its SQLite files) ever sees this one's traffic.
"""

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
os.environ.setdefault("ARBITER_VAR_DIR", str(PROJECT_DIR / "var" / "test" / f"run-{os.getpid()}"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# On a shared Redis (REDIS_URL set, as in CI's second pass) this session's queues, results and
# channel groups live under their own prefix: a message an earlier run's killed worker left
# unacknowledged comes back to that run's queue, never to one of ours. Deleted at the end.
os.environ.setdefault("REDIS_KEY_PREFIX", f"arbiter-test-{os.getpid()}:")
# Share the converted bundled model with `make run`: converting it takes ~25 s.
# Tests join studies from one address many times a minute; the join limit has its own test.
os.environ.setdefault("STUDY_JOIN_RATE_LIMIT", "100000")
os.environ.setdefault("STUDY_JOIN_RATE_LIMIT_PER_EXPERIMENT", "100000")
os.environ.setdefault("LLM_MODELS_DIR", str(PROJECT_DIR / "var" / "models"))
