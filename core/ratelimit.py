"""Rate limits shared by every process: a counter per key and window in Redis.

`rate_limit_hit` is the one mechanism: the API's per-token limit (config/api_contract.py
TokenAuth) and the study-link join view's per-address and per-experiment limits
(`@rate_limited`) both count here, so N web replicas enforce one limit together.

Fixed windows: a key may make `limit` calls in each `window_s`-second window aligned to the
clock; the refusal's Retry-After is the seconds until that window ends. A burst straddling two
windows can reach 2 × limit in a moment, which is enough for throttling abuse and costs one
round trip (INCR + EXPIRE pipelined). If Redis does not answer, calls are allowed (logged):
a limit is not worth refusing everyone.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.redis_client import redis_client, redis_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateLimit:
    allowed: bool
    # Seconds until the window ends (whole, at least 1): the 429's Retry-After.
    retry_after: int
    count: int


def rate_limit_hit(*, scope: str, key: str, limit: int, window_s: int) -> RateLimit:
    """Count one call of `key` in `scope`; allowed while the window's count is ≤ `limit`."""
    now = time.time()
    window = int(now // window_s)
    name = redis_key(f"ratelimit:{scope}:{key}:{window}")
    retry_after = max(1, math.ceil((window + 1) * window_s - now))
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(name)
        pipe.expire(name, window_s + 1)
        count, _ = pipe.execute()
    except redis.RedisError:
        log.warning("rate limit %s not counted: Redis did not answer", scope, exc_info=True)
        return RateLimit(allowed=True, retry_after=retry_after, count=0)
    return RateLimit(allowed=count <= limit, retry_after=retry_after, count=int(count))


def request_address(request: HttpRequest) -> str:
    """The client's address: behind the proxy (ARBITER_BEHIND_PROXY) the last hop the proxy
    added to X-Forwarded-For (a client can prepend anything, not append), else REMOTE_ADDR."""
    if settings.ARBITER_BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return str(request.META.get("REMOTE_ADDR", ""))


def too_many_requests(retry_after: int, message: str) -> HttpResponse:
    """The page's 429: a sentence, and Retry-After in seconds."""
    response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(retry_after)
    return response


View = Callable[..., HttpResponse]


def rate_limited(
    *,
    scope: str,
    limit: int | Callable[[], int],
    window_s: int,
    key: Callable[..., str] | None = None,
) -> Callable[[View], View]:
    """A view decorator: at most `limit` calls per `window_s` per client address, and, with
    `key(request, *args, **kwargs)`, also per that key (e.g. the experiment of a study link:
    scope "join" counts `join-address` and `join-key` separately). Over either: a 429 with
    Retry-After, the view not run.

        @rate_limited(scope="join", limit=10, window_s=60, key=lambda r, slug: slug)
        def join(request, slug): ...

    `limit` may be a function, read at each call (e.g. a setting's current value).
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            checks = [(f"{scope}-address", request_address(request))]
            if key is not None:
                checks.append((f"{scope}-key", key(request, *args, **kwargs)))
            allowed = limit() if callable(limit) else limit
            for check_scope, value in checks:
                hit = rate_limit_hit(scope=check_scope, key=value, limit=allowed, window_s=window_s)
                if not hit.allowed:
                    return too_many_requests(
                        hit.retry_after,
                        f"Too many requests: try again in {hit.retry_after} seconds.",
                    )
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
