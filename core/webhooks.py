"""Outbound webhooks: every app emits its events here (`webhook_emit`), core delivers them.

Delivery, as the README documents it for receivers:
- a POST of a JSON body `{"id", "type", "created_at", "data": [event, ...]}`; `data` is a list
  because labels arrive in batches (one request per endpoint per WEBHOOK_BATCH_MS window,
  however many labels), every other event alone in its list;
- headers `Arbiter-Idempotency-Key` (the body's `id`, the same on every retry and redelivery),
  `Arbiter-Timestamp` (Unix seconds of this attempt) and `Arbiter-Signature`:
  `sha256=` + hex HMAC-SHA256 of `<timestamp>.<body bytes>` with the endpoint's secret;
- at least once: an attempt that times out, cannot connect or gets no 2xx is retried with
  exponential backoff (WEBHOOK_MAX_ATTEMPTS attempts); a delivery that used them all counts
  as a failure, and WEBHOOK_DISABLE_AFTER failures in a row disable the endpoint, saying why.

Emitting never blocks or fails the write that caused it: it runs after the commit, catches
everything, and for labels costs one Redis round trip (the batch is built by a Celery task).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import redis
from celery import Task, current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from core.redis_client import redis_client, redis_key

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Arbiter-Signature"
TIMESTAMP_HEADER = "Arbiter-Timestamp"
IDEMPOTENCY_HEADER = "Arbiter-Idempotency-Key"
EVENT_HEADER = "Arbiter-Event"

# Events that arrive in bursts are coalesced per endpoint: one request per window.
BATCHED_EVENTS = frozenset({WebhookEvent.LABEL_CREATED})
# At most this many events in one request's `data`.
BATCH_MAX = 500
# A pending delivery not attempted this long after it was due was lost by a worker.
SWEEP_GRACE = timedelta(seconds=60)
BACKOFF_CAP_S = 3600


class WebhookError(Exception):
    """A refusal a person can act on (shown on the page, a 4xx in the API)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# --- signing --------------------------------------------------------------------------------
def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256, keyed by the endpoint's secret, of `<timestamp>.<body>`.
    The timestamp is inside the signed text, so a replayed request cannot be re-dated."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def webhook_secret_new() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# --- endpoints ------------------------------------------------------------------------------
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _host_port(netloc_or_url: str, scheme: str = "http") -> tuple[str, int]:
    parts = urlsplit(netloc_or_url if "//" in netloc_or_url else f"//{netloc_or_url}")
    host = (parts.hostname or "").lower().rstrip(".")
    return host, parts.port or (443 if scheme == "https" else 80)


def webhook_url_check(url: str, *, own_hosts: Iterable[str]) -> str:
    """The URL, stripped, if Arbiter may post to it; else ValidationError saying why.

    Refused: a scheme other than http(s), credentials in the URL, and the server itself (a loop:
    its events would call it back). `own_hosts` are the host[:port] the request came in on;
    ALLOWED_HOSTS names the deployment's public names too (loopback names there are only the
    local defaults, so a receiver on another local port stays allowed)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises on a port that is not a number
    except ValueError:
        raise ValidationError("Not a URL.", code="invalid") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError("Only http:// and https:// URLs can receive webhooks.", code="scheme")
    if not parts.hostname:
        raise ValidationError("The URL needs a host.", code="host")
    if parts.username or parts.password:
        raise ValidationError("Put no credentials in the URL; the signature authenticates.")
    target = _host_port(url, parts.scheme)
    own = {_host_port(host, parts.scheme) for host in own_hosts if host}
    for host in settings.ALLOWED_HOSTS:
        name = host.lower().lstrip(".")
        if name and name != "*" and name not in _LOOPBACK:
            own.add((name, target[1]))
    if target in own:
        raise ValidationError(
            "That URL is this Arbiter server: its own events would call it in a loop.",
            code="loop",
        )
    return url


def endpoint_events(values: Iterable[str]) -> list[str]:
    chosen = set(values)
    unknown = chosen - set(WebhookEvent.values)
    if unknown:
        raise ValidationError(f"Unknown events: {', '.join(sorted(unknown))}.", code="events")
    if not chosen:
        raise ValidationError("Choose at least one event.", code="events")
    return [event for event in WebhookEvent.values if event in chosen]


def webhook_endpoint_create(
    *, owner: User, name: str, url: str, events: Iterable[str], own_hosts: Iterable[str]
) -> WebhookEndpoint:
    """Register an endpoint with a new secret; ValidationError for a URL it may not call."""
    return WebhookEndpoint.objects.create(
        owner=owner,
        name=name.strip() or url,
        url=webhook_url_check(url, own_hosts=own_hosts),
        events=endpoint_events(events),
        secret=webhook_secret_new(),
    )


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint, enabled: bool, by: str = "") -> None:
    """Turn an endpoint on (its pending deliveries are sent) or off (they wait)."""
    with transaction.atomic():
        endpoint.enabled = enabled
        endpoint.disabled_reason = "" if enabled else (by or "Disabled by its owner.")
        if enabled:
            endpoint.failures_in_row = 0
        endpoint.save(update_fields=["enabled", "disabled_reason", "failures_in_row"])
        if enabled:
            pending = list(
                endpoint.deliveries.filter(status=DeliveryStatus.PENDING).values_list(
                    "pk", flat=True
                )
            )
            transaction.on_commit(lambda: _deliveries_enqueue(pending))


def webhook_endpoint_secret_rotate(*, endpoint: WebhookEndpoint) -> str:
    endpoint.secret = webhook_secret_new()
    endpoint.save(update_fields=["secret"])
    return endpoint.secret


def webhook_redeliver(*, delivery: WebhookDelivery) -> None:
    """Send a logged delivery again, same body and idempotency key, with fresh attempts."""
    if not delivery.endpoint.enabled:
        raise WebhookError("Enable the endpoint first: a disabled endpoint receives nothing.", 409)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=None, last_error=""
    )
    transaction.on_commit(lambda: _deliveries_enqueue([delivery.pk]))


# --- emitting -------------------------------------------------------------------------------
def webhook_emit(*, event: WebhookEvent, payload: Mapping[str, Any]) -> None:
    """Announce `event` to the endpoints that subscribe to it, once the current transaction
    commits (at once outside one). Never raises: a webhook problem must not fail the write."""
    data = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))

    def send() -> None:
        try:
            if event in BATCHED_EVENTS:
                _buffer_push(event, data)
            else:
                _deliveries_enqueue(_deliveries_create(event, [data]))
        except Exception:
            log.exception("webhook event %s was not queued", event)

    transaction.on_commit(send)


def _redis() -> redis.Redis:
    return redis_client()


def _key(name: str) -> str:
    return redis_key(f"webhooks:{name}")


def _buffer_push(event: str, data: Any) -> None:
    """Append to the event's buffer; the first event of a window schedules its flush."""
    pipe = _redis().pipeline()
    pipe.rpush(_key(f"buffer:{event}"), json.dumps(data))
    # Deleted by the flush when it starts; the expiry only covers a flush that was lost.
    pipe.set(_key(f"scheduled:{event}"), 1, nx=True, ex=30)
    _, first = pipe.execute()
    if first:
        countdown = settings.WEBHOOK_BATCH_MS / 1000
        _task(FLUSH_TASK).apply_async((event,), countdown=countdown)


# Take up to ARGV[1] events off the buffer into the in-flight list, atomically.
_TAKE = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""


def webhook_events_flush(*, event: str) -> int:
    """Turn the buffered events into deliveries (one per subscribed endpoint per BATCH_MAX
    events); returns how many events were taken. One flush at a time per event: events a dead
    flush held (its in-flight list) are taken again first, so none is lost — one may be sent
    twice, which at-least-once allows (each carries its own id)."""
    client = _redis()
    client.delete(_key(f"scheduled:{event}"))
    lock = client.lock(_key(f"flushing:{event}"), timeout=120, blocking=False)
    if not lock.acquire():
        return 0
    buffer, in_flight = _key(f"buffer:{event}"), _key(f"in-flight:{event}")
    taken, created = 0, []
    try:
        while True:
            items = client.lrange(in_flight, 0, -1) or client.eval(
                _TAKE, 2, buffer, in_flight, BATCH_MAX
            )
            if not items:
                break
            created += _deliveries_create(event, [json.loads(item) for item in items])
            client.delete(in_flight)
            taken += len(items)
    finally:
        lock.release()
    # The first attempt right here, not through another task: one broker hop less between a
    # label and its receiver. A retry (or a send that raises) goes through the task.
    for delivery_id in created:
        try:
            wait = webhook_delivery_attempt(delivery_id=delivery_id)
        except Exception:
            log.exception("webhook delivery %s: first attempt failed to run", delivery_id)
            _deliveries_enqueue([delivery_id])
            continue
        if wait is not None:
            _task(DELIVER_TASK).apply_async((delivery_id,), countdown=wait)
    return taken


def _deliveries_create(event: str, events: Sequence[Any]) -> list[int]:
    """One delivery per subscribed, enabled endpoint per BATCH_MAX events; their ids."""
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(enabled=True).only("pk", "events")
        if event in endpoint.events
    ]
    if not endpoints:
        return []
    now = timezone.now()
    rows = []
    for start in range(0, len(events), BATCH_MAX):
        chunk = list(events[start : start + BATCH_MAX])
        for endpoint in endpoints:
            key = uuid4()
            body = {"id": str(key), "type": event, "created_at": now.isoformat(), "data": chunk}
            rows.append(
                WebhookDelivery(
                    endpoint_id=endpoint.pk,
                    event=event,
                    idempotency_key=key,
                    body=json.dumps(body, separators=(",", ":")),
                )
            )
    with transaction.atomic():
        created = WebhookDelivery.objects.bulk_create(rows)
    # bulk_create sets ids on PostgreSQL and SQLite ≥ 3.35 (RETURNING).
    return [row.pk for row in created]


def _deliveries_enqueue(ids: Sequence[int]) -> None:
    for pk in ids:
        _task(DELIVER_TASK).delay(pk)


# The tasks sent from here, by their registered names: core.tasks imports this module, so this
# one does not import it back (core.apps registers the tasks in every process).
DELIVER_TASK = "core.tasks.webhook_deliver_task"
FLUSH_TASK = "core.tasks.webhook_events_flush_task"


def _task(name: str) -> Task:
    return current_app.tasks[name]


# --- delivering -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    ok: bool
    status: int | None
    error: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could lead back to this server or inside the network: not followed.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _post(url: str, body: bytes, headers: Mapping[str, str]) -> Attempt:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _opener.open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            return Attempt(ok=200 <= response.status < 300, status=response.status, error="")
    except urllib.error.HTTPError as error:
        return Attempt(ok=False, status=error.code, error=f"HTTP {error.code} {error.reason}")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Attempt(ok=False, status=None, error=f"No answer: {reason}"[:500])


def backoff_seconds(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: WEBHOOK_RETRY_SECONDS doubled per attempt."""
    return float(min(settings.WEBHOOK_RETRY_SECONDS * 2 ** (attempts - 1), BACKOFF_CAP_S))


def webhook_delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> float | None:
    """Make one attempt at a pending delivery; returns the seconds until the next attempt when
    one is due (the caller schedules it), else None.

    Claimed with a conditional UPDATE (pending and due): a second copy of the task finds nothing
    to claim. The claim pushes `next_attempt_at` past the request timeout, so the sweeper leaves
    an attempt in progress alone."""
    now = now or timezone.now()
    hold = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 30)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + timedelta(seconds=1))
    claimed = WebhookDelivery.objects.filter(
        due, pk=delivery_id, status=DeliveryStatus.PENDING, endpoint__enabled=True
    ).update(next_attempt_at=hold, attempts=F("attempts") + 1)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    body = delivery.body.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Arbiter-Webhooks/1",
        IDEMPOTENCY_HEADER: str(delivery.idempotency_key),
        TIMESTAMP_HEADER: str(timestamp),
        EVENT_HEADER: delivery.event,
        SIGNATURE_HEADER: webhook_signature(secret=endpoint.secret, timestamp=timestamp, body=body),
    }
    result = _post(endpoint.url, body, headers)
    finished = timezone.now()
    if result.ok:
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.DELIVERED, delivered_at=finished, next_attempt_at=None,
            response_status=result.status, last_error="",
        )  # fmt: skip
        WebhookEndpoint.objects.filter(pk=endpoint.pk).exclude(failures_in_row=0).update(
            failures_in_row=0
        )
        return None
    if delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS:
        wait = backoff_seconds(delivery.attempts)
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            next_attempt_at=finished + timedelta(seconds=wait),
            response_status=result.status, last_error=result.error[:500],
        )  # fmt: skip
        return wait
    _delivery_failed(delivery=delivery, result=result, now=finished)
    return None


def _delivery_failed(*, delivery: WebhookDelivery, result: Attempt, now: datetime) -> None:
    """Every attempt used: the delivery failed; enough failures in a row disable the endpoint."""
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None,
            response_status=result.status, last_error=result.error[:500],
        )  # fmt: skip
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        endpoint.failures_in_row += 1
        fields = ["failures_in_row"]
        if endpoint.enabled and endpoint.failures_in_row >= settings.WEBHOOK_DISABLE_AFTER:
            endpoint.enabled = False
            endpoint.disabled_reason = (
                f"Disabled automatically on {now:%Y-%m-%d %H:%M} UTC: "
                f"{endpoint.failures_in_row} deliveries in a row failed after "
                f"{settings.WEBHOOK_MAX_ATTEMPTS} attempts each; the last: {result.error}"
            )[:500]
            fields += ["enabled", "disabled_reason"]
            log.warning("webhook endpoint %s disabled: %s", endpoint.pk, endpoint.disabled_reason)
        endpoint.save(update_fields=fields)


def webhook_deliveries_sweep(*, now: datetime | None = None) -> int:
    """Re-enqueue pending deliveries a worker lost (due longer than SWEEP_GRACE ago), and
    flush buffers whose flush was lost; returns how many deliveries were re-enqueued."""
    now = now or timezone.now()
    stale = now - SWEEP_GRACE
    lost = list(
        WebhookDelivery.objects.filter(
            Q(next_attempt_at__lt=stale) | Q(next_attempt_at__isnull=True, created_at__lt=stale),
            status=DeliveryStatus.PENDING,
            endpoint__enabled=True,
        ).values_list("pk", flat=True)[:1000]
    )
    _deliveries_enqueue(lost)
    for event in BATCHED_EVENTS:
        webhook_events_flush(event=event)
    return len(lost)
