from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import worker_start

StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def trained_models_dir(settings: Any, tmp_path: Path) -> Path:
    """Checkpoints of this test's training runs in its own folder (its workers get it too)."""
    settings.LLM_TRAINED_MODELS_DIR = tmp_path / "trained-models"
    return settings.LLM_TRAINED_MODELS_DIR


@pytest.fixture
def start_training_worker(redis_server: str, trained_models_dir: Path) -> Iterator[StartWorker]:
    """Start real `celery worker` processes on the test broker and database, writing
    checkpoints to this test's folder; all are stopped at the end (the test may SIGKILL one
    itself). Each has its own log, `worker_log(process.log_name)`."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*, queues: str = "training,default", **env: str) -> Any:
        log_name = f"training-worker-{uuid.uuid4().hex[:8]}"
        env = {"LLM_TRAINED_MODELS_DIR": str(trained_models_dir), **env}
        try:
            process = worker_start(queues=queues, log_name=log_name, env=env)
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
