"""`make run`'s supervisor (config/run.py) refuses bad surroundings with one clear line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from config.run import _ready

ROOT = Path(__file__).resolve().parents[2]


def run_supervisor(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    environment.update(ARBITER_VAR_DIR=str(tmp_path / "var"), PORT="1", **env)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "config.run"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, time.monotonic() - start


def test_an_unreachable_database_is_named_and_nothing_starts(tmp_path: Path) -> None:
    result, seconds = run_supervisor(tmp_path, DATABASE_URL="postgres://nobody@127.0.0.1:1/x")
    assert result.returncode == 2
    assert "arbiter: cannot reach the database named by DATABASE_URL" in result.stderr
    assert "127.0.0.1" in result.stderr and "port 1" in result.stderr
    assert seconds < 20  # not the connection pool's timeout
    assert not (tmp_path / "var" / "redis.sock").exists()


@pytest.mark.postgres
def test_a_missing_database_says_so(tmp_path: Path) -> None:
    missing = urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path="/no_such_database"))
    result, _ = run_supervisor(tmp_path, DATABASE_URL=missing)
    assert result.returncode == 2
    assert 'database "no_such_database" does not exist' in result.stderr


def test_an_unreachable_redis_is_named(tmp_path: Path) -> None:
    result, _ = run_supervisor(tmp_path, REDIS_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 2
    assert "arbiter: cannot reach Redis at REDIS_URL=redis://127.0.0.1:1/0" in result.stderr


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    result, _ = run_supervisor(tmp_path, WORKER_CONCURRENCY="many")
    assert result.returncode == 2
    assert "WORKER_CONCURRENCY" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_the_start_up_poll_makes_the_web_log_no_error_and_real_503s_still_do(
    live_asgi_server, settings, caplog
):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # a part that is not up yet
    caplog.set_level(logging.INFO)
    assert _ready(live_asgi_server.url) is False
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    # Anyone else asking /healthz while a part is down gets the 503, and the log says so.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{live_asgi_server.url}/healthz", timeout=10)
    refused.value.close()
    assert refused.value.code == 503
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["Service Unavailable: /healthz"]
