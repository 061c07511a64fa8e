import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from llm.forms import ModelConfigForm
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig, TrialStatus
from llm.trial_worker import model_trial_run
from tests.factories import ModelTrialFactory
from tests.helpers import PROJECT_DIR, child_environment

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served_bundled_model() -> Iterator[str]:
    """`manage.py serve_model` on the bundled config, as a user would start it."""
    ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).update(temperature=0, max_new_tokens=16)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve_model", BUNDLED_CONFIG_NAME, "--port", str(port)],
        cwd=PROJECT_DIR, env=child_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"serve_model did not start: {process.stdout.read().decode()}")
            time.sleep(0.25)
    yield base_url
    process.terminate()
    process.wait(timeout=20)
    process.stdout.close()


def test_openai_backend_streams_from_serve_model(served_bundled_model, researcher):
    form = ModelConfigForm(
        {
            "name": "shared SmolLM2",
            "backend": "openai",
            "model": BUNDLED_CONFIG_NAME,
            "base_url": served_bundled_model,
            "temperature": "0",
            "top_p": "1",
            "max_new_tokens": "16",
            "timeout_s": "60",
        }
    )
    assert form.is_valid(), form.errors  # the reachability probe passed
    config = form.save()
    trial = ModelTrialFactory(config=config, user=researcher, prompt="Say hello.")

    model_trial_run(trial_id=trial.pk)

    trial.refresh_from_db()
    assert trial.status == TrialStatus.DONE, trial.error
    assert trial.text.strip()
    assert 0 < trial.completion_tokens <= 16


def test_serve_model_refuses_an_unknown_config():
    result = subprocess.run(
        [sys.executable, "manage.py", "serve_model", "no such config", "--port", "8999"],
        cwd=PROJECT_DIR, env=child_environment(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no model config named 'no such config'" in result.stderr
