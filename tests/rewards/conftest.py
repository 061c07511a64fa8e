from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.helpers import PROJECT_DIR, child_environment

StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture(autouse=True)
def reward_models_dir(settings: Any, tmp_path: Path) -> Path:
    """Checkpoints of this test in its own folder (a worker started by the test gets it too)."""
    settings.REWARD_MODELS_DIR = tmp_path / "reward-models"
    return settings.REWARD_MODELS_DIR


@pytest.fixture
def start_worker(redis_server: str, reward_models_dir: Path) -> Iterator[StartWorker]:
    """Start real `celery worker` processes (optionally with beat) on the test broker and
    database; all are stopped at the end. The test may SIGKILL one itself."""
    from config.celery import app

    started: list[subprocess.Popen[bytes]] = []

    def start(*, queues: str = "training,default", beat: bool = False, **env: str) -> Any:
        log_path = settings.VAR_DIR / "log" / f"reward-worker-{uuid.uuid4().hex[:8]}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        child_env = {**child_environment(), "REWARD_MODELS_DIR": str(reward_models_dir), **env}
        name = f"rewards-{uuid.uuid4().hex[:8]}@%h"
        args = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
                "--queues", queues, "--hostname", name, "--loglevel", "INFO"]  # fmt: skip
        if beat:
            schedule = settings.VAR_DIR / f"beat-{uuid.uuid4().hex[:8]}"
            args += ["--beat", "--schedule", str(schedule)]
        with log_path.open("ab") as log:
            process = subprocess.Popen(args, cwd=PROJECT_DIR, env=child_env, stdout=log,
                                       stderr=subprocess.STDOUT)  # fmt: skip
        started.append(process)
        deadline = time.monotonic() + 90
        hostname = name.replace("%h", "")
        while True:
            replies = app.control.ping(timeout=0.5) or []
            if any(hostname in next(iter(reply)) for reply in replies):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the Celery worker did not start; see {log_path}")
        process.log_path = log_path  # type: ignore[attr-defined]
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
