"""The webhooks API (mounted by config/api.py at /api/webhooks/): register endpoints, read their
delivery log, enable or disable them, redeliver.

Researchers and admins, like the page; a researcher sees their own endpoints, an admin every
one. The page's services run behind both (core/webhooks.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Schema, Status
from pydantic import Field

from config.api_contract import Body, Id, Refusal, api_user, errors, researchers
from core.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from core.roles import Role, user_has_role
from core.text import StoredText
from core.webhooks import (
    WebhookError,
    webhook_endpoint_create,
    webhook_endpoint_enable,
    webhook_redeliver,
)

webhooks_router = Router(tags=["webhooks"], auth=researchers)

EventName = Literal[
    "label.created",
    "reward_version.promoted",
    "reward_version.rejected",
    "debate.judged",
    "tree.done",
    "export.finished",
]
assert set(EventName.__args__) == set(WebhookEvent.values)  # type: ignore[attr-defined]


class EndpointIn(Body):
    name: StoredText = Field(default="", max_length=100)
    # Plain str: StoredText's schema would hide the pattern (NUL is refused for every body).
    url: str = Field(
        max_length=500,
        pattern=r"^https?://",
        description="http(s); not this server itself (a loop), no credentials in it",
    )
    events: list[EventName] = Field(min_length=1, max_length=6)


class EnabledIn(Body):
    enabled: bool


class EndpointOut(Schema):
    id: int
    name: str
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str
    failures_in_row: int
    created_at: datetime
    owner: str
    secret: str = Field(description="signs every delivery: see the README's recipe")

    @staticmethod
    def of(endpoint: WebhookEndpoint) -> EndpointOut:
        return EndpointOut(
            id=endpoint.pk, name=endpoint.name, url=endpoint.url, events=endpoint.events,
            enabled=endpoint.enabled, disabled_reason=endpoint.disabled_reason,
            failures_in_row=endpoint.failures_in_row, created_at=endpoint.created_at,
            owner=endpoint.owner.get_username(), secret=endpoint.secret,
        )  # fmt: skip


class DeliveryOut(Schema):
    id: int
    event: str
    idempotency_key: UUID
    status: str
    attempts: int
    response_status: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None


def _endpoints(request: HttpRequest) -> QuerySet[WebhookEndpoint]:
    endpoints = WebhookEndpoint.objects.select_related("owner")
    user = api_user(request)
    return endpoints if user_has_role(user, Role.ADMIN) else endpoints.filter(owner=user)


@webhooks_router.get("/", response={200: list[EndpointOut]} | errors(403))
def endpoint_list(request: HttpRequest) -> list[EndpointOut]:
    return [EndpointOut.of(endpoint) for endpoint in _endpoints(request)[:200]]


@webhooks_router.post("/", response={201: EndpointOut} | errors(403))
def endpoint_create(request: HttpRequest, body: EndpointIn) -> Status:
    try:
        endpoint = webhook_endpoint_create(
            owner=api_user(request), name=body.name, url=body.url, events=body.events,
            own_hosts=[request.get_host()],
        )  # fmt: skip
    except ValidationError as error:
        message = " ".join(error.messages)
        raise Refusal(422, f"url: {message}", [{"field": "url", "message": message}]) from None
    return Status(201, EndpointOut.of(endpoint))


@webhooks_router.get("/{endpoint_id}", response={200: EndpointOut} | errors(403, 404))
def endpoint_get(request: HttpRequest, endpoint_id: Id) -> EndpointOut:
    return EndpointOut.of(get_object_or_404(_endpoints(request), pk=endpoint_id))


@webhooks_router.post("/{endpoint_id}/enabled", response={200: EndpointOut} | errors(403, 404))
def endpoint_enabled(request: HttpRequest, endpoint_id: Id, body: EnabledIn) -> EndpointOut:
    endpoint = get_object_or_404(_endpoints(request), pk=endpoint_id)
    webhook_endpoint_enable(endpoint=endpoint, enabled=body.enabled)
    return EndpointOut.of(endpoint)


@webhooks_router.get(
    "/{endpoint_id}/deliveries", response={200: list[DeliveryOut]} | errors(403, 404)
)
def delivery_list(request: HttpRequest, endpoint_id: Id) -> list[WebhookDelivery]:
    endpoint = get_object_or_404(_endpoints(request), pk=endpoint_id)
    return list(endpoint.deliveries.order_by("-created_at", "-id")[:200])


@webhooks_router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    response={202: DeliveryOut} | errors(403, 404, 409),
)
def delivery_redeliver(request: HttpRequest, endpoint_id: Id, delivery_id: Id) -> Status:
    endpoint = get_object_or_404(_endpoints(request), pk=endpoint_id)
    delivery = get_object_or_404(endpoint.deliveries.select_related("endpoint"), pk=delivery_id)
    try:
        webhook_redeliver(delivery=delivery)
    except WebhookError as error:
        raise Refusal(error.status, error.message) from None
    delivery.refresh_from_db()
    return Status(202, delivery)
