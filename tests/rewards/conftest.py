from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import worker_start

StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture(autouse=True)
def reward_models_dir(settings: Any, tmp_path: Path) -> Path:
    """Checkpoints of this test in its own folder (a worker started by the test gets it too)."""
    settings.REWARD_MODELS_DIR = tmp_path / "reward-models"
    return settings.REWARD_MODELS_DIR


@pytest.fixture
def start_worker(redis_server: str, reward_models_dir: Path) -> Iterator[StartWorker]:
    """Start real `celery worker` processes (optionally with beat) on the test broker and
    database; all are stopped at the end. The test may SIGKILL one itself. Each has its own
    log, `worker_log(process.log_name)`."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*, queues: str = "training,default", beat: bool = False, **env: str) -> Any:
        log_name = f"reward-worker-{uuid.uuid4().hex[:8]}"
        try:
            env = {"REWARD_MODELS_DIR": str(reward_models_dir), **env}
            process = worker_start(queues=queues, log_name=log_name, beat=beat, env=env)
        except RuntimeError as error:
            pytest.fail(str(error))
        process.log_name = log_name  # type: ignore[attr-defined]
        started.append(process)
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
