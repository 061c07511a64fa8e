"""Reachability of the parts Arbiter needs: database, Redis, at least one Celery worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app

CHECK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class PartStatus:
    ok: bool
    ms: float
    detail: str = ""


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


class NoWorkerError(Exception):
    pass


def _database_ping() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # Health checks run on a pool thread; don't leave its connection open.
        connection.close()
    return connection.vendor


def _workers_ping() -> str:
    replies = celery_app.control.ping(timeout=CHECK_TIMEOUT_S, limit=1)
    if not replies:
        raise NoWorkerError("no Celery worker answered")
    return f"{len(replies)} answering"


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


async def health_check() -> Health:
    database, redis_status, workers = await asyncio.gather(
        _timed(sync_to_async(_database_ping, thread_sensitive=False)(), "database"),
        _timed(_redis_ping(), "redis"),
        _timed(sync_to_async(_workers_ping, thread_sensitive=False)(), "workers"),
    )
    return Health(database=database, redis=redis_status, workers=workers)
