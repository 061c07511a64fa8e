from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from config.embedded import embedded_redis_start, redis_answers, redis_keys_delete
from core.roles import Role
from tests.factories import PASSWORD, UserFactory
from tests.helpers import process_stop, worker_node, worker_start

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip


# --- the postgres marker ---------------------------------------------------------------------
ON_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
REQUIRE_POSTGRES = os.environ.get("ARBITER_REQUIRE_POSTGRES") == "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    if REQUIRE_POSTGRES and not ON_POSTGRES:
        pytest.exit("ARBITER_REQUIRE_POSTGRES=1 but DATABASE_URL is not PostgreSQL", returncode=2)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.postgres`: the one way a test says it needs PostgreSQL. Elsewhere it is a
    visible skip; in CI's PostgreSQL pass (ARBITER_REQUIRE_POSTGRES=1) it must run."""
    if item.get_closest_marker("postgres") and not ON_POSTGRES:
        pytest.skip("needs PostgreSQL: DATABASE_URL=postgres://… (CI's second pass)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    # A postgres test skipped for any reason in the PostgreSQL pass would be a green lie.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_POSTGRES and report.skipped and item.get_closest_marker("postgres"):
        report.outcome = "failed"
        report.longrepr = f"a postgres test was skipped in the PostgreSQL pass: {report.longrepr}"


@pytest.fixture(scope="session", autouse=True)
def session_var_dir() -> Iterator[Path]:
    """This session's var/ folder (see tests/environment.py), removed at the end."""
    yield settings.VAR_DIR
    if settings.VAR_DIR.name.startswith("run-"):
        shutil.rmtree(settings.VAR_DIR, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def redis_server(session_var_dir: Path) -> Iterator[str]:
    """The embedded Redis for this test session, unless REDIS_URL names a real server."""
    if not settings.REDIS_EMBEDDED:
        if not redis_answers(settings.REDIS_URL):
            pytest.exit(f"REDIS_URL={settings.REDIS_URL} does not answer", returncode=2)
        yield settings.REDIS_URL
        redis_keys_delete(settings.REDIS_URL, settings.REDIS_KEY_PREFIX)
        return
    socket_path = Path(settings.REDIS_URL.removeprefix("unix://"))
    process = embedded_redis_start(
        socket_path=socket_path, log_path=settings.VAR_DIR / "log" / "redis.log"
    )
    yield settings.REDIS_URL
    process_stop(process)


@pytest.fixture(scope="session", autouse=True)
def test_database_released(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Let Postgres drop the test database at the end of the session.

    Django's ASGI handler never closes the database connection of a request the browser
    aborted (its per-request thread is gone before `request_finished`), so a live-server test
    can leave one idle session behind, and DROP DATABASE refuses while it exists.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # PBKDF2's deliberate slowness buys nothing in tests and costs seconds per login.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- named users ------------------------------------------------------------------------------
@pytest.fixture
def annotator(db: None) -> Any:
    return UserFactory(username="annotator1", role=Role.ANNOTATOR)


@pytest.fixture
def annotator2(db: None) -> Any:
    return UserFactory(username="annotator2", role=Role.ANNOTATOR)


@pytest.fixture
def researcher(db: None) -> Any:
    return UserFactory(username="researcher", role=Role.RESEARCHER)


@pytest.fixture
def admin_user(db: None) -> Any:
    return UserFactory(username="admin", role=Role.ADMIN, is_staff=True)


@pytest.fixture
def outsider(db: None) -> Any:
    """Signed in, but in no role."""
    return UserFactory(username="outsider")


@pytest.fixture
def users(annotator: Any, researcher: Any, admin_user: Any, outsider: Any) -> dict[str, Any]:
    return {
        "annotator": annotator,
        "researcher": researcher,
        "admin": admin_user,
        "outsider": outsider,
    }


# --- real processes ---------------------------------------------------------------------------
SHARED_WORKER_QUEUES = ("generation", "training", "default")


@pytest.fixture(scope="session")
def shared_worker(redis_server: str, django_db_setup: None) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery worker` process for the session, started idle: it consumes only inside
    `celery_worker_process`."""
    try:
        process = worker_start(queues=",".join(SHARED_WORKER_QUEUES), log_name="test-worker")
    except RuntimeError as error:
        pytest.fail(str(error))
    _shared_worker_consume(process, on=False)
    yield process
    process_stop(process)


@pytest.fixture
def celery_worker_process(
    shared_worker: subprocess.Popen[bytes],
) -> Iterator[subprocess.Popen[bytes]]:
    """The session's worker, on every queue, for this test only.

    Outside the tests that ask for it, it takes nothing: a test that runs a task in-process, or
    on a worker of its own with other settings, is never raced by it. Messages an earlier test
    left in its queues are dropped first. It sees only committed rows: tests that hand it work
    use `transactional_db`.
    """
    from config.celery import app

    with app.connection_for_write() as connection:
        for queue in SHARED_WORKER_QUEUES:
            connection.default_channel.queue_purge(queue)  # type: ignore[attr-defined]
    _shared_worker_consume(shared_worker, on=True)
    yield shared_worker
    _shared_worker_consume(shared_worker, on=False)


def _shared_worker_consume(process: subprocess.Popen[bytes], *, on: bool) -> None:
    from config.celery import app

    node = [worker_node(process)]
    for queue in SHARED_WORKER_QUEUES:
        if on:
            replies = app.control.add_consumer(queue, destination=node, reply=True, timeout=30)
        else:
            replies = app.control.cancel_consumer(queue, destination=node, reply=True, timeout=30)
        if not replies:
            told = "add" if on else "cancel"
            pytest.fail(f"the shared worker did not answer when told to {told} {queue}")


@dataclass(frozen=True)
class LiveServer:
    url: str


@pytest.fixture
def live_asgi_server(
    transactional_db: None, django_db_serialized_rollback: None
) -> Iterator[LiveServer]:
    """The real ASGI application (HTTP + websockets) under uvicorn, in a thread.

    Serialized rollback puts the data migrations (the role groups) back after the flush.
    """
    import uvicorn

    from config.asgi import application

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(application, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield LiveServer(url=f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's Chromium through Playwright. Missing browser: a visible skip, or a failure
    when ARBITER_REQUIRE_BROWSER=1 (CI).

    Function-scoped on purpose: Playwright's sync API leaves an event loop marked running in
    this thread while it is started, which Django's async-safety guard rejects. The guard is
    lifted only while a browser test runs, and Playwright is stopped before the next test.
    """
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("ARBITER_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


__all__ = ["PASSWORD"]


def pytest_report_header() -> list[str]:
    from tests.helpers import FUZZ_EXAMPLES, FUZZ_SEED

    return [f"api fuzz: ARBITER_FUZZ_SEED={FUZZ_SEED} ARBITER_FUZZ_EXAMPLES={FUZZ_EXAMPLES}"]
