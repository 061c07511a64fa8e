"""Outbound webhooks: an endpoint a researcher registers, and the log of what was sent to it.

Rows are written by core/webhooks.py only (its services), read by the pages, the API and admin.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class WebhookEvent(models.TextChoices):
    LABEL_CREATED = "label.created", "A label was created (delivered in batches)"
    REWARD_VERSION_PROMOTED = "reward_version.promoted", "A reward-model version was promoted"
    REWARD_VERSION_REJECTED = "reward_version.rejected", "A reward-model version was rejected"
    DEBATE_JUDGED = "debate.judged", "A debate was judged"
    TREE_DONE = "tree.done", "An amplification tree finished"
    EXPORT_FINISHED = "export.finished", "An export finished"


class WebhookEndpoint(models.Model):
    """Where events go. `secret` signs every delivery (see the README's verification recipe)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    name = models.CharField(max_length=100)
    # Checked by webhooks.webhook_url_check (http(s), not this server), not by URLValidator,
    # which refuses hosts without a dot such as a compose service's `http://receiver:8080`.
    url = models.CharField(max_length=500)
    # A list of WebhookEvent values, read and written through webhooks.endpoint_events().
    events = models.JSONField(default=list)
    secret = models.CharField(max_length=64)
    enabled = models.BooleanField(default=True)
    # Why it is disabled, when it is: by its owner, or automatically after failures.
    disabled_reason = models.CharField(max_length=500, blank=True)
    # Deliveries that failed (every attempt used) since the last success.
    failures_in_row = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} → {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One message to one endpoint: its body is fixed when the row is created, so every attempt
    (retries, a redelivery) sends the same bytes under the same idempotency key."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The JSON body sent, exactly: the signature is computed over these bytes.
    body = models.TextField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt is due (a pending row past it was lost by a worker: swept).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.endpoint_id} ({self.status})"
