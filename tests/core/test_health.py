import json
import signal
import time
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from core.health import health_check, workers_report
from core.workers import WORKER_BEAT_TTL_S, WorkerBeat
from tests.helpers import signed_in, worker_start


@pytest.mark.django_db
def test_healthz_is_503_without_a_worker(redis_server):
    response = Client().get(reverse("healthz"))
    body = json.loads(response.content)
    assert response.status_code == 503
    assert body["ok"] is False
    assert body["database"]["ok"] is True
    assert body["redis"]["ok"] is True
    assert body["workers"]["ok"] is False
    assert "no Celery worker answered" in body["workers"]["detail"]


@pytest.mark.worker
@pytest.mark.django_db
def test_healthz_is_200_with_everything_up(celery_worker_process):
    response = Client().get(reverse("healthz"))
    body = json.loads(response.content)
    assert response.status_code == 200, body
    assert body["ok"] is True and body["workers"]["ok"] is True


@pytest.mark.django_db
def test_healthz_reports_redis_down(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client().get(reverse("healthz"))
    body = json.loads(response.content)
    assert response.status_code == 503
    assert body["redis"]["ok"] is False
    assert body["database"]["ok"] is True


@pytest.mark.django_db
def test_healthz_refuses_post():
    assert Client().post(reverse("healthz")).status_code == 405


QUEUES = {"generation", "training", "default"}


def beat(name: str, *queues: str, ago_s: float = 2.0) -> WorkerBeat:
    return WorkerBeat(name, tuple(queues), timezone.now() - timedelta(seconds=ago_s))


def test_workers_are_reported_answering_busy_or_missing_by_queue():
    now = timezone.now()
    both = {"gen@h": beat("gen@h", "generation"), "rest@h": beat("rest@h", "default", "training")}
    up = workers_report(beats=both, answering={"gen@h", "rest@h"}, queues=QUEUES, now=now)
    assert (up.ok, up.detail) == (True, "2 answering")
    assert up.items == ("gen@h (generation): answering", "rest@h (default, training): answering")

    # The generation worker is busy with a speech: it beats but does not answer the ping.
    busy = workers_report(beats=both, answering={"rest@h"}, queues=QUEUES, now=now)
    assert (busy.ok, busy.detail) == (True, "1 answering, 1 busy")
    assert busy.items[0] == (
        "gen@h (generation): busy, not answering a ping (a job holds its only process); "
        "alive, its heartbeat 2 s ago"
    )

    # Gone (no heartbeat, no answer): its queue has no worker, and the part is down.
    gone = workers_report(beats={"rest@h": both["rest@h"]}, answering={"rest@h"}, queues=QUEUES,
                          now=now)  # fmt: skip
    assert (gone.ok, gone.detail) == (False, "1 answering; no worker for generation")
    assert gone.items[-1] == "queue generation: no worker; its jobs wait"

    nobody = workers_report(beats={}, answering=set(), queues=QUEUES, now=now)
    assert nobody.ok is False
    assert nobody.detail.startswith("no Celery worker answered a ping or sent a heartbeat; ")


@pytest.mark.worker
@pytest.mark.django_db
def test_a_worker_busy_with_a_job_is_busy_and_a_killed_one_drops_out(admin_user):
    queue = f"health-{uuid.uuid4().hex[:8]}"
    process = worker_start(queues=queue, log_name="busy-worker", include="tests.worker_sleep")
    try:
        name = next(line.split(" (")[0] for line in async_to_sync(health_check)().workers.items
                    if f"({queue})" in line)  # fmt: skip
        assert f"{name} ({queue}): answering" in async_to_sync(health_check)().workers.items

        celery_app.send_task("tests.sleep", args=[120], queue=queue)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = async_to_sync(health_check)().workers.items
            mine = next((line for line in lines if line.startswith(f"{name} ")), "")
            if "busy" in mine:
                break
        assert mine.startswith(f"{name} ({queue}): busy, not answering a ping"), lines
        page = signed_in(admin_user).get(reverse("operations_health")).content.decode()
        assert f"{name} ({queue}): busy, not answering a ping" in page
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=20)
    # Killed: its heartbeat expires, and it is no longer listed as alive.
    deadline = time.monotonic() + WORKER_BEAT_TTL_S + 10
    while time.monotonic() < deadline:
        lines = async_to_sync(health_check)().workers.items
        if not any(line.startswith(f"{name} ") for line in lines):
            break
        time.sleep(1)
    assert not any(line.startswith(f"{name} ") for line in lines), lines
