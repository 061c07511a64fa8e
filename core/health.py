"""Reachability of the parts Arbiter needs: database, Redis, a Celery worker for each queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, replace
from datetime import datetime

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.celery import app as celery_app
from core.workers import WorkerBeat, worker_beats

CHECK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class PartStatus:
    ok: bool
    ms: float
    detail: str = ""
    items: tuple[str, ...] = ()  # the workers: one line per worker, and per queue with none


@dataclass(frozen=True)
class Health:
    database: PartStatus
    redis: PartStatus
    workers: PartStatus

    @property
    def ok(self) -> bool:
        return self.database.ok and self.redis.ok and self.workers.ok

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, **asdict(self)}


def _database_ping() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # Health checks run on a pool thread; don't leave its connection open.
        connection.close()
    return connection.vendor


def workers_report(
    *, beats: dict[str, WorkerBeat], answering: set[str], queues: set[str], now: datetime
) -> PartStatus:
    """What the workers are doing, truthfully: each worker answering a ping, or busy (its
    heartbeat is fresh but it does not answer: a job holds its only process), and each queue
    Arbiter routes to that no live worker consumes. Up when every such queue has one."""
    lines = []
    served: set[str] = set()
    for name in sorted(beats.keys() | answering):
        beat = beats.get(name)
        consumes = f" ({', '.join(beat.queues)})" if beat else " (queues unknown: no heartbeat)"
        if beat:
            served.update(beat.queues)
        if name in answering:
            lines.append(f"{name}{consumes}: answering")
        elif beat:
            ago = max(0, round((now - beat.at).total_seconds()))
            lines.append(
                f"{name}{consumes}: busy, not answering a ping (a job holds its only process); "
                f"alive, its heartbeat {ago} s ago"
            )
    missing = sorted(queues - served)
    lines += [f"queue {queue}: no worker; its jobs wait" for queue in missing]
    busy = len(beats.keys() - answering)
    counts = [f"{len(answering)} answering"] + ([f"{busy} busy"] if busy else [])
    if not beats and not answering:
        detail = "no Celery worker answered a ping or sent a heartbeat"
    else:
        detail = ", ".join(counts)
    if missing:
        detail += f"; no worker for {', '.join(missing)}"
    return PartStatus(ok=not missing and bool(served), ms=0.0, detail=detail, items=tuple(lines))


def _routed_queues() -> set[str]:
    routes = celery_app.conf.task_routes or {}
    return {route["queue"] for route in routes.values()} | {celery_app.conf.task_default_queue}


def _workers_check() -> PartStatus:
    beats = worker_beats()
    # Every beating worker that can answer does so well within the timeout; stop waiting then.
    replies = celery_app.control.ping(timeout=CHECK_TIMEOUT_S, limit=len(beats) or None)
    answering = {name for reply in replies or [] for name in reply}
    return workers_report(
        beats=beats, answering=answering, queues=_routed_queues(), now=timezone.now()
    )


async def _redis_ping() -> str:
    client = aioredis.from_url(
        settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S
    )
    try:
        await client.ping()
    finally:
        await client.aclose()
    return "embedded" if settings.REDIS_EMBEDDED else "server"


async def _timed(check: Awaitable[str], name: str) -> PartStatus:
    start = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check, timeout=CHECK_TIMEOUT_S + 1)
    except Exception as error:  # a health check reports every failure, whatever its kind
        reason = str(error) or error.__class__.__name__
        return PartStatus(False, _ms(start), f"{name} unreachable: {reason}")
    return PartStatus(True, _ms(start), detail)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


async def _workers_timed() -> PartStatus:
    start = time.perf_counter()
    try:
        report = await asyncio.wait_for(
            sync_to_async(_workers_check, thread_sensitive=False)(), timeout=CHECK_TIMEOUT_S + 1
        )
    except Exception as error:  # a health check reports every failure, whatever its kind
        reason = str(error) or error.__class__.__name__
        return PartStatus(False, _ms(start), f"workers unreachable: {reason}")
    return replace(report, ms=_ms(start))


async def health_check() -> Health:
    database, redis_status, workers = await asyncio.gather(
        _timed(sync_to_async(_database_ping, thread_sensitive=False)(), "database"),
        _timed(_redis_ping(), "redis"),
        _workers_timed(),
    )
    return Health(database=database, redis=redis_status, workers=workers)
