"""The API's per-token rate limit (config/api_contract.py TokenAuth): a documented 429 with
Retry-After."""

from __future__ import annotations

import uuid
from typing import Any

from django.test import Client

from tests.helpers import Api


def test_a_token_over_its_limit_gets_429_with_retry_after_and_others_do_not(
    db: None, settings: Any, researcher: Any
) -> None:
    settings.REDIS_KEY_PREFIX = f"{settings.REDIS_KEY_PREFIX}{uuid.uuid4().hex}:"
    settings.API_RATE_LIMIT = 3
    busy, other = Api(researcher), Api(researcher)
    statuses = [busy.get("/queues/").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = busy.get("/queues/")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= settings.API_RATE_WINDOW_SECONDS
    body = refused.json()
    assert body["errors"] == [] and "API_RATE_LIMIT" in body["detail"]
    assert other.get("/queues/").status_code == 200
    settings.API_RATE_LIMIT = 0  # off
    assert busy.get("/queues/").status_code == 200


def test_every_operation_documents_the_429_and_its_retry_after(db: None) -> None:
    document = Client().get("/api/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            limited = operation["responses"].get("429")
            assert limited, f"{method.upper()} {path} does not list 429"
            assert "Retry-After" in limited["headers"]
