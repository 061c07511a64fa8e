"""Webhooks (core/webhooks.py): signed, batched, retried, at least once, never in a label's way.

A real HTTP receiver on a local port takes the deliveries; where a worker matters (retries,
batching) a real Celery worker sends them."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.urls import reverse

from annotations.services import label_submit, queue_item_claim
from core import webhooks
from core.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from core.webhooks import (
    webhook_delivery_attempt,
    webhook_emit,
    webhook_endpoint_create,
    webhook_url_check,
)
from tests.annotations.factories import make_queue, pairwise
from tests.helpers import (
    PROJECT_DIR,
    process_stop,
    signed_in,
    wait_for,
    worker_log,
    worker_start,
)


# --- a real receiver --------------------------------------------------------------------------
@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int = 0


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # status to answer for the n-th request (0-based) carrying a given idempotency key
    answer: Callable[[str, int], int] = lambda key, seen: 200

    def keys(self) -> list[str]:
        return [r.headers["Arbiter-Idempotency-Key"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    lock = threading.Lock()
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 — http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            key = self.headers.get("Arbiter-Idempotency-Key", "")
            with lock:
                seen = sum(1 for r in state.requests if r.headers.get(
                    "Arbiter-Idempotency-Key") == key)  # fmt: skip
                status = state.answer(key, seen)
                state.requests.append(Received(dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _readme_verify() -> Callable[..., bool]:
    """The verification recipe exactly as the README documents it."""
    readme = (PROJECT_DIR / "README.md").read_text()
    block = re.search(
        r"<!-- webhook-verify -->\n```python\n(.*?)```\n<!-- /webhook-verify -->", readme, re.S
    )
    assert block, "the README's verification recipe is missing"
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)  # noqa: S102 — our own README, under test
    return namespace["verify"]


def _endpoint(owner: User, url: str, *events: str) -> WebhookEndpoint:
    return webhook_endpoint_create(
        owner=owner, name="lab", url=url, events=events or [WebhookEvent.EXPORT_FINISHED],
        own_hosts=["testserver"],
    )  # fmt: skip


# --- signing ---------------------------------------------------------------------------------
def test_a_delivery_verifies_with_the_readme_recipe_and_a_tampered_one_does_not(
    db: None, researcher: User, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = _endpoint(researcher, receiver.url)
    with django_capture_on_commit_callbacks(execute=False):
        ids = webhooks._deliveries_create(WebhookEvent.EXPORT_FINISHED, [{"export_id": 7}])
    assert webhook_delivery_attempt(delivery_id=ids[0]) is None
    [request] = receiver.requests
    verify = _readme_verify()
    assert verify(endpoint.secret, request.headers, request.body)
    body = json.loads(request.body)
    assert body["type"] == "export.finished" and body["data"] == [{"export_id": 7}]
    assert request.headers["Arbiter-Idempotency-Key"] == body["id"]
    # Another secret, another body, a re-dated replay: all refused.
    assert not verify("whsec_other", request.headers, request.body)
    assert not verify(endpoint.secret, request.headers, request.body.replace(b"7", b"8"))
    redated = {**request.headers, "Arbiter-Timestamp": str(int(time.time()) + 1)}
    assert not verify(endpoint.secret, redated, request.body)
    stale = {**request.headers, "Arbiter-Timestamp": str(int(time.time()) - 3600)}
    assert not verify(endpoint.secret, stale, request.body)
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED


# --- refused URLs ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.org/hook", "Only http"),
        ("javascript:alert(1)", "Only http"),
        ("file:///etc/passwd", "Only http"),
        ("http://user:pw@example.org/hook", "no credentials"),
        ("http://testserver/api/queues/", "loop"),
        ("http://arbiter.example.org/hook", "loop"),
        ("https://ARBITER.example.org./x", "loop"),
        ("http://127.0.0.1:8000/", "loop"),
    ],
)
def test_a_url_that_is_not_http_or_loops_back_is_refused(settings: Any, url: str, why: str) -> None:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "arbiter.example.org"]
    with pytest.raises(ValidationError, match=why):
        webhook_url_check(url, own_hosts=["testserver", "127.0.0.1:8000"])


def test_a_receiver_elsewhere_on_this_machine_is_allowed(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "arbiter.example.org"]
    url = "http://127.0.0.1:9999/hook"
    assert webhook_url_check(url, own_hosts=["127.0.0.1:8000"]) == url


def test_the_page_registers_an_endpoint_and_refuses_a_loop(
    db: None, researcher: User, receiver: Receiver
) -> None:
    client = signed_in(researcher)
    events = [WebhookEvent.LABEL_CREATED, WebhookEvent.TREE_DONE]
    refused = client.post(reverse("webhooks"), {"url": "http://testserver/x", "events": events})
    assert refused.status_code == 400
    assert "in a loop" in refused.content.decode()
    assert not WebhookEndpoint.objects.exists()
    made = client.post(reverse("webhooks"), {"url": receiver.url, "events": events})
    endpoint = WebhookEndpoint.objects.get()
    assert made.status_code == 302 and made["Location"] == reverse(
        "webhook_detail", args=[endpoint.pk]
    )
    assert endpoint.events == ["label.created", "tree.done"] and endpoint.owner == researcher
    page = client.get(made["Location"]).content.decode()
    assert endpoint.secret in page and receiver.url in page


def test_the_pages_refuse_other_people_and_wrong_methods(
    db: None, researcher: User, annotator: User, admin_user: User, receiver: Receiver
) -> None:
    other = User.objects.create_user("researcher2")
    other.groups.add(*researcher.groups.all())
    endpoint = _endpoint(researcher, receiver.url)
    detail = reverse("webhook_detail", args=[endpoint.pk])
    assert signed_in(annotator).get(reverse("webhooks")).status_code == 403
    assert signed_in(researcher).get(detail).status_code == 200
    assert signed_in(admin_user).get(detail).status_code == 200  # admins see every endpoint
    client = signed_in(researcher)
    client.force_login(other)
    assert client.get(detail).status_code == 404
    toggled = client.post(reverse("webhook_enabled", args=[endpoint.pk]))
    assert toggled.status_code == 404
    assert (
        signed_in(researcher).get(reverse("webhook_enabled", args=[endpoint.pk])).status_code == 405
    )
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_an_owner_disables_and_redelivers(
    db: None, researcher: User, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint = _endpoint(researcher, receiver.url)
    with django_capture_on_commit_callbacks(execute=False):
        [pk] = webhooks._deliveries_create(WebhookEvent.EXPORT_FINISHED, [{"export_id": 1}])
    webhook_delivery_attempt(delivery_id=pk)
    client = signed_in(researcher)
    client.post(reverse("webhook_enabled", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == "Disabled by its owner."
    refused = client.post(reverse("webhook_redeliver", args=[endpoint.pk, pk]), follow=True)
    assert "Enable the endpoint first" in refused.content.decode()
    client.post(reverse("webhook_enabled", args=[endpoint.pk]), {"enabled": "on"})
    with django_capture_on_commit_callbacks(execute=False) as sent:
        client.post(reverse("webhook_redeliver", args=[endpoint.pk, pk]))
    assert len(sent) == 1  # the delivery task is enqueued on commit
    webhook_delivery_attempt(delivery_id=pk)
    first, again = receiver.requests
    assert first.body == again.body
    assert first.headers["Arbiter-Idempotency-Key"] == again.headers["Arbiter-Idempotency-Key"]


def test_an_admin_registers_an_endpoint_in_the_admin_and_a_loop_is_refused(
    db: None, admin_user: User, researcher: User, receiver: Receiver
) -> None:
    admin_user.is_superuser = True  # as a deployment's first admin is (createsuperuser)
    admin_user.save()
    client = signed_in(admin_user)
    add = reverse("admin:core_webhookendpoint_add")
    form = {"owner": researcher.pk, "name": "lab", "events": ["debate.judged"], "enabled": "on",
            "deliveries-TOTAL_FORMS": 0, "deliveries-INITIAL_FORMS": 0}  # fmt: skip
    looped = client.post(add, {**form, "url": "http://testserver/admin/"})
    assert looped.status_code == 200 and "in a loop" in looped.content.decode()
    made = client.post(add, {**form, "url": receiver.url})
    assert made.status_code == 302, made.content.decode()[:2000]
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and endpoint.owner == researcher


# --- never in a label's way ----------------------------------------------------------------
def _label(queue: Any, annotator: User) -> int:
    lease = queue_item_claim(queue=queue, annotator=annotator)
    assert lease is not None
    label, _ = label_submit(
        assignment_id=lease.pk, annotator=annotator, value={"choice": "a"}, time_spent_ms=900,
        client_request_id=uuid.uuid4(),
    )  # fmt: skip
    return label.pk


def test_a_label_is_stored_when_redis_is_unreachable(
    db: None, researcher: User, annotator: User, monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any, receiver: Receiver,
) -> None:  # fmt: skip
    _endpoint(researcher, receiver.url, WebhookEvent.LABEL_CREATED)
    queue = make_queue(members=[annotator], items=pairwise(1), labels_per_item=1)
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(webhooks, "_redis", lambda: dead)
    with django_capture_on_commit_callbacks(execute=True):
        label_id = _label(queue, annotator)
    assert queue.labels.filter(pk=label_id).exists()


def test_emitting_outside_a_transaction_with_no_endpoint_sends_nothing(db: None) -> None:
    webhook_emit(event=WebhookEvent.TREE_DONE, payload={"tree_id": 1})
    assert not WebhookDelivery.objects.exists()


# --- with a real worker --------------------------------------------------------------------
# Settings small enough for a test to watch retries and disabling.
WORKER_ENV = {
    "WEBHOOK_BATCH_MS": "300",
    "WEBHOOK_RETRY_SECONDS": "1",
    "WEBHOOK_MAX_ATTEMPTS": "3",
    "WEBHOOK_DISABLE_AFTER": "2",
    "WEBHOOK_TIMEOUT_SECONDS": "2",
}


@pytest.fixture(scope="module")
def webhook_worker(redis_server: str, django_db_setup: None) -> Iterator[None]:
    process = worker_start(queues="default", log_name="webhooks-worker", env=WORKER_ENV)
    yield
    process_stop(process)


@pytest.fixture
def worker_settings(settings: Any) -> None:
    for name, value in WORKER_ENV.items():
        setattr(settings, name, int(value))


def test_a_failing_receiver_is_retried_then_disabled_saying_why(
    transactional_db: None, django_db_serialized_rollback: None, webhook_worker: None,
    worker_settings: None, researcher: User,
    receiver: Receiver,
) -> None:  # fmt: skip
    receiver.answer = lambda key, seen: 500
    endpoint = _endpoint(researcher, receiver.url)
    for export_id in (1, 2):
        webhook_emit(event=WebhookEvent.EXPORT_FINISHED, payload={"export_id": export_id})
    log = worker_log("webhooks-worker")

    def disabled() -> bool:
        endpoint.refresh_from_db()
        return not endpoint.enabled

    wait_for(disabled, timeout=60, what="the endpoint to be disabled", log=log)
    # Each delivery: three attempts (WEBHOOK_MAX_ATTEMPTS), same key every time.
    keys = receiver.keys()
    assert len(keys) == 6 and len(set(keys)) == 2
    assert all(keys.count(key) == 3 for key in set(keys))
    assert "2 deliveries in a row failed after 3 attempts" in endpoint.disabled_reason
    assert "HTTP 500" in endpoint.disabled_reason
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"failed"}
    # A disabled endpoint receives nothing more.
    webhook_emit(event=WebhookEvent.EXPORT_FINISHED, payload={"export_id": 3})
    time.sleep(2)
    assert len(receiver.requests) == 6


def test_labels_arrive_batched_at_least_once_with_idempotency_keys(
    transactional_db: None, django_db_serialized_rollback: None, webhook_worker: None,
    worker_settings: None, researcher: User,
    annotator: User, receiver: Receiver,
) -> None:  # fmt: skip
    # Every message's first attempt fails: it must come again, under the same key.
    receiver.answer = lambda key, seen: 503 if seen == 0 else 200
    _endpoint(researcher, receiver.url, WebhookEvent.LABEL_CREATED)
    queue = make_queue(members=[annotator], items=pairwise(40), labels_per_item=1)
    label_ids = {_label(queue, annotator) for _ in range(40)}
    log = worker_log("webhooks-worker")

    def delivered() -> set[int]:
        got = set()
        for request in receiver.requests:
            if request.status == 200:
                got |= {event["id"] for event in json.loads(request.body)["data"]}
        return got if got >= label_ids else set()

    wait_for(delivered, timeout=60, what="every label's event", log=log)
    by_key: dict[str, list[bytes]] = {}
    for request in receiver.requests:
        by_key.setdefault(request.headers["Arbiter-Idempotency-Key"], []).append(request.body)
    shapes = [(len(bodies), len(set(bodies))) for bodies in by_key.values()]
    assert all(n >= 2 and distinct == 1 for n, distinct in shapes), shapes
    # 40 labels, far fewer messages: a message per 300 ms window, not per label.
    assert len(by_key) < 20, f"{len(by_key)} messages for 40 labels"
    event = json.loads(receiver.requests[0].body)["data"][0]
    assert set(event) == {"id", "queue_id", "item_id", "annotator", "value", "created_at"}
    pending = WebhookDelivery.objects.exclude(status=DeliveryStatus.DELIVERED)
    wait_for(lambda: not pending.exists(), timeout=10, what="every delivery logged as delivered")


def test_a_receiver_that_times_out_is_logged_and_retried_later(
    db: None, settings: Any, researcher: User, receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    settings.WEBHOOK_RETRY_SECONDS = 7

    def slow(key: str, seen: int) -> int:
        time.sleep(2.5)
        return 200

    receiver.answer = slow
    _endpoint(researcher, receiver.url)
    with django_capture_on_commit_callbacks(execute=False):
        [pk] = webhooks._deliveries_create(WebhookEvent.EXPORT_FINISHED, [{"export_id": 1}])
    started = time.monotonic()
    assert webhook_delivery_attempt(delivery_id=pk) == 7.0  # the next attempt, in seconds
    assert time.monotonic() - started < 2.4  # given up at the timeout, not the answer
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert "timed out" in delivery.last_error
    # Not due yet: a second copy of the task claims nothing.
    assert webhook_delivery_attempt(delivery_id=pk) is None
    assert WebhookDelivery.objects.get().attempts == 1
