import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.test import Client

from tests.factories import PASSWORD

PROJECT_DIR = Path(__file__).resolve().parent.parent

# The Origin a browser on the app's own host sends; AllowedHostsOriginValidator checks it.
ORIGIN = (b"origin", b"http://127.0.0.1")


class Api:
    """A test client speaking JSON to /api with a bearer token."""

    def __init__(self, user=None, token=None):
        from annotations.services import api_token_create

        self.client = Client()
        self.token = token or (
            api_token_create(user=user, name=f"test {uuid.uuid4()}") if user else None
        )

    def _headers(self):
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}

    def get(self, path):
        return self.client.get(f"/api{path}", **self._headers())

    def post(self, path, body=None, **kwargs):
        if "data" in kwargs:
            return self.client.post(f"/api{path}", kwargs["data"], **self._headers())
        return self.client.post(
            f"/api{path}",
            json.dumps(body or {}),
            content_type="application/json",
            **self._headers(),
        )


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def session_cookie(user) -> bytes:
    """A Cookie header value that authenticates a websocket as `user`."""
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={signed_in(user).cookies[name].value}".encode()


def browser_login(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


# --- API fuzzing (tests/config/test_api_fuzz.py) ---------------------------------------------
# A fixed budget per operation and role; the seed is printed in the session header for replay.
FUZZ_EXAMPLES = int(os.environ.get("ARBITER_FUZZ_EXAMPLES", "25"))
FUZZ_SEED = int(os.environ.get("ARBITER_FUZZ_SEED") or random.SystemRandom().randrange(2**32))


@dataclass(frozen=True)
class FuzzWorld:
    tokens: dict[str, str]
    # Path parameters that name real rows, so the fuzzer gets past the 404s: an app whose router
    # takes another id adds a row here.
    ids: dict[str, int]


def fuzz_world(users: dict[str, Any]) -> FuzzWorld:
    """Something for the operations to find: a queue of items the annotator is a member of,
    an export job of the researcher's, a reward model on the queue, a debate in a batch; and a
    real token per role."""
    from annotations.exports import ExportSpec
    from annotations.models import ExportJob
    from annotations.services import api_token_create
    from debate.models import Debate, DebateBatch, QuestionBank
    from debate.records import BatchSpec
    from rewards.models import RewardModel
    from tests.annotations.factories import make_queue, pairwise
    from tests.factories import DebateFactory

    queue = make_queue(
        name="fuzzed", members=[users["annotator"]], items=pairwise(5), labels_per_item=2
    )
    job = ExportJob.objects.create(
        created_by=users["researcher"], spec=ExportSpec(queues=[queue.pk]).model_dump(mode="json")
    )
    reward_model = RewardModel.objects.create(name="fuzzed", created_by=users["researcher"])
    reward_model.queues.add(queue)
    # A debate in a batch: the debate API's paths reach their records, not only their 404s.
    bank = QuestionBank.objects.create(name="fuzzed")
    debate = cast(Debate, DebateFactory(judge=users["annotator"]))
    assert debate.debater_a_config_id is not None
    spec = BatchSpec(debater_a_config_id=debate.debater_a_config_id, count=1)
    batch = DebateBatch.objects.create(
        name="fuzzed", bank=bank, spec=spec.model_dump(mode="json"), created_by=users["researcher"]
    )
    Debate.objects.filter(pk=debate.pk).update(batch=batch)
    tokens = {role: api_token_create(user=user, name="fuzz") for role, user in users.items()}
    # A webhook endpoint of the researcher's, with one logged delivery.
    from core.models import WebhookDelivery, WebhookEndpoint

    endpoint = WebhookEndpoint.objects.create(
        owner=users["researcher"], name="fuzzed", url="https://receiver.example.org/hook",
        events=["label.created"], secret="whsec_fuzzed",
    )  # fmt: skip
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event="label.created", body="{}")
    ids = {
        "queue_id": queue.pk,
        "job_id": job.pk,
        "reward_model_id": reward_model.pk,
        "debate_id": debate.pk,
        "batch_id": batch.pk,
        "endpoint_id": endpoint.pk,
        "delivery_id": delivery.pk,
    }
    return FuzzWorld(tokens=tokens, ids=ids)


# --- processes we start -----------------------------------------------------------------------
def db_url_for_children() -> str:
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def child_environment() -> dict[str, str]:
    """Environment for processes we start: the test database, broker and var/ folder."""
    env = dict(os.environ)
    env["ARBITER_VAR_DIR"] = str(settings.VAR_DIR)
    env["DATABASE_URL"] = db_url_for_children()
    if not settings.REDIS_EMBEDDED:
        env["REDIS_URL"] = settings.REDIS_URL
    return env


def run_settings(probe: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `probe` (Python source) in a new process with the test database and `env` on top."""
    return subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True,
        env={**child_environment(), **env}, timeout=60,
    )  # fmt: skip


def worker_start(
    *,
    queues: str,
    log_name: str,
    include: str = "",
    beat: bool = False,
    env: dict[str, str] | None = None,
    session_leader: bool = False,
) -> subprocess.Popen[bytes]:
    """A real `celery worker` process (solo pool) on the test broker and database, consuming
    `queues`; `include` names an extra module for it to import, `beat` runs the scheduler in it,
    `env` goes on top of the test environment, `session_leader` starts it in a session of its
    own (as `config/run.py` does). Returns once it answers a ping. Its log:
    `worker_log(log_name)`."""
    from config.celery import app

    log_path = worker_log(log_name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    hostname = f"{log_name}-{uuid.uuid4().hex[:8]}@%h"
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
               "--queues", queues, "--hostname", hostname, "--loglevel", "INFO"]  # fmt: skip
    if include:
        command += ["--include", include]
    if beat:
        command += ["--beat", "--schedule", str(settings.VAR_DIR / f"beat-{uuid.uuid4().hex[:8]}")]
    with log_path.open("ab") as log:
        environment = {**child_environment(), **(env or {})}
        process = subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=session_leader,
        )
    # A worker imports Django, Celery and the apps: seconds alone, far more on a 2-core
    # machine that is also running a test suite.
    deadline = time.monotonic() + 120
    name = worker_node(process)
    while not app.control.ping(destination=[name], timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"the Celery worker did not start; {log_tail(log_path)}")
    return process


def worker_node(process: subprocess.Popen[bytes]) -> str:
    """The node name `worker_start` gave the worker (what `control` commands address)."""
    args = [str(arg) for arg in process.args]  # type: ignore[union-attr]
    return args[args.index("--hostname") + 1].replace("%h", socket.gethostname())


def process_stop(process: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` (a loaded machine can take
    longer to stop a worker mid-task); always reaped, so no Popen outlives its process."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def worker_log(log_name: str) -> Path:
    return settings.VAR_DIR / "log" / f"{log_name}.log"


def log_tail(path: Path, chars: int = 2000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return f"{path} ends:\n{text[-chars:]}"


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    log: Path | None = None,
    interval: float = 0.2,
) -> Any:
    """Poll `condition` every `interval` seconds until it returns something true, and return
    that; fail after `timeout` seconds, with the tail of `log` (the worker that should have done
    it) if given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    detail = f"; {log_tail(log)}" if log else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")


def sideways_overflow(page: Any) -> int:
    """How far the page scrolls sideways, in px (0 when it fits its viewport)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def screenshots_at_both_widths(page: Any, folder: Path, name: str) -> None:
    """Screenshots at 1366 and 390 px into `folder`; at each width the page does not scroll
    sideways (a wide table scrolls inside its own box). Leaves the page at 1366 px."""
    folder.mkdir(parents=True, exist_ok=True)
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        overflow = sideways_overflow(page)
        assert overflow <= 0, f"{name} scrolls sideways at {width} px by {overflow} px"
    page.set_viewport_size({"width": 1366, "height": 900})


def threads_run(work: Callable[[int], None], count: int, *, timeout: float = 120) -> None:
    """Run work(0) … work(count - 1) each in its own thread and wait for all of them; a thread
    still running after `timeout` fails the test (a lock never released, say)."""
    workers = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=timeout)
    assert not any(worker.is_alive() for worker in workers)
