"""core/ratelimit.py: the Redis counter every replica shares, and the view decorator the
study-link join view takes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from core.ratelimit import rate_limit_hit, rate_limited, request_address


@pytest.fixture(autouse=True)
def own_keys(settings: Any) -> None:
    # Counters live a window long in the session's Redis: each test counts under its own prefix.
    settings.REDIS_KEY_PREFIX = f"{settings.REDIS_KEY_PREFIX}{uuid.uuid4().hex}:"


def test_a_key_is_refused_after_its_limit_until_the_window_ends() -> None:
    hits = [rate_limit_hit(scope="t", key="a", limit=3, window_s=60) for _ in range(5)]
    assert [hit.allowed for hit in hits] == [True, True, True, False, False]
    assert all(1 <= hit.retry_after <= 60 for hit in hits)
    assert rate_limit_hit(scope="t", key="b", limit=3, window_s=60).allowed  # another key


def test_a_limit_fails_open_when_redis_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    from core import ratelimit

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(ratelimit, "redis_client", lambda: dead)
    assert all(rate_limit_hit(scope="t", key="a", limit=1, window_s=60).allowed for _ in range(3))


@rate_limited(scope="join", limit=5, window_s=60, key=lambda request, slug: slug)
def join(request: HttpRequest, slug: str) -> HttpResponse:
    return HttpResponse("joined")


def _join(slug: str, address: str) -> HttpResponse:
    return join(RequestFactory().get(f"/join/{slug}/", REMOTE_ADDR=address), slug)


def test_a_burst_of_joins_from_one_address_is_refused_with_429_and_retry_after() -> None:
    answers = [_join(f"study-{n}", "203.0.113.7") for n in range(8)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    refused = answers[-1]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "try again in" in refused.content.decode()
    assert _join("study-0", "198.51.100.1").status_code == 200  # another address


def test_a_burst_of_joins_to_one_study_from_many_addresses_is_refused() -> None:
    answers = [_join("study", f"198.51.100.{n}") for n in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2


def test_behind_the_proxy_the_address_is_the_hop_it_added(settings: Any) -> None:
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9"
    )
    settings.ARBITER_BEHIND_PROXY = False
    assert request_address(request) == "10.0.0.2"
    settings.ARBITER_BEHIND_PROXY = True
    assert request_address(request) == "203.0.113.9"
