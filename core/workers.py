"""Each Celery worker's heartbeat: how the health check tells a busy worker from a gone one.

A worker answers a ping from its main loop, and a worker whose only process is running a job
(the solo pool; a generation that holds both cores) does not answer within the check's
timeout, so a ping alone reads "busy" as "absent". So every worker also writes a heartbeat
into Redis from a thread of its own: a key per worker, naming its queues, written every
WORKER_BEAT_EVERY_S and expiring after WORKER_BEAT_TTL_S. A worker that stops (killed, its
machine gone) stops writing; a clean shutdown deletes its key at once.

The thread starts on Celery's worker_ready signal, so only worker processes write; the web
and beat only read (core.health).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

logger = logging.getLogger(__name__)

WORKER_BEAT_EVERY_S = 5.0
WORKER_BEAT_TTL_S = 15
_stopping = threading.Event()


@dataclass(frozen=True)
class WorkerBeat:
    hostname: str
    queues: tuple[str, ...]
    at: datetime  # when it last wrote


def _prefix() -> str:
    return f"{settings.REDIS_KEY_PREFIX}arbiter:worker:"


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def worker_beat_write(client: redis.Redis, *, hostname: str, queues: list[str]) -> None:
    value = json.dumps({"queues": sorted(queues), "at": datetime.now(UTC).isoformat()})
    client.set(_prefix() + hostname, value, ex=WORKER_BEAT_TTL_S)


def worker_beats() -> dict[str, WorkerBeat]:
    """Every worker whose heartbeat has not expired, by hostname."""
    client = _client()
    try:
        keys = list(client.scan_iter(match=_prefix() + "*", count=100))
        values = client.mget(keys) if keys else []
    finally:
        client.close()
    beats = {}
    for key, value in zip(keys, values, strict=True):
        if value is None:  # expired between the scan and the read
            continue
        hostname = key.decode().removeprefix(_prefix())
        data = json.loads(value)
        at = datetime.fromisoformat(data["at"])
        beats[hostname] = WorkerBeat(hostname, tuple(data["queues"]), at)
    return beats


def _beat_loop(hostname: str, queues: list[str]) -> None:
    client = _client()
    while not _stopping.is_set():
        try:
            worker_beat_write(client, hostname=hostname, queues=queues)
        except redis.RedisError as error:  # the broker is down: the worker says so itself
            logger.warning("worker heartbeat not written: %s", error)
        _stopping.wait(WORKER_BEAT_EVERY_S)
    client.close()


@worker_ready.connect
def _beat_start(sender: Any, **kwargs: Any) -> None:
    queues = list(sender.app.amqp.queues.consume_from)
    _stopping.clear()
    thread = threading.Thread(
        target=_beat_loop, args=(sender.hostname, queues), name="arbiter-worker-beat", daemon=True
    )
    thread.start()


@worker_shutdown.connect
def _beat_stop(sender: Any, **kwargs: Any) -> None:
    _stopping.set()
    client = _client()
    try:
        client.delete(_prefix() + sender.hostname)
    except redis.RedisError:
        pass  # it expires on its own
    finally:
        client.close()
