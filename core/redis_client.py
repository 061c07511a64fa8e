"""One Redis connection pool per process for core's own keys (webhook buffers, rate limits)."""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings


@cache
def redis_client() -> redis.Redis:
    # Short timeouts: callers sit on request paths and fail open (or log) when Redis is away.
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def redis_key(name: str) -> str:
    """A key under REDIS_KEY_PREFIX, like every other key Arbiter writes."""
    return f"{settings.REDIS_KEY_PREFIX}arbiter:{name}"
