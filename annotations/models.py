from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from annotations.kinds import ItemKind, Payload, QueueKind, item_kind

DEFAULT_LEASE_MINUTES = 10
UNDO_WINDOW = timedelta(seconds=60)


class Priority(models.TextChoices):
    FIFO = "fifo", "First in, first out"
    RANDOM = "random", "Random"
    UNCERTAINTY = "uncertainty", "Reward-model uncertainty (highest first)"


class Queue(models.Model):
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(
        max_length=30, choices=[(kind.value, kind.value.replace("_", " ")) for kind in QueueKind]
    )
    instructions = models.TextField(blank=True, help_text="Markdown; shown to annotators")
    labels_per_item = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="k: labels wanted per item; no item ever gets more",
    )
    priority = models.CharField(max_length=20, choices=Priority.choices, default=Priority.FIFO)
    gold_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="share of an annotator's items that are gold items (0 to 0.5)",
    )
    lease_minutes = models.PositiveSmallIntegerField(
        default=DEFAULT_LEASE_MINUTES,
        validators=[MinValueValidator(1), MaxValueValidator(240)],
        help_text="an item claimed and not labelled in this time goes back to the queue",
    )
    # Non-gold items: the progress bar's denominator, kept by queue_items_create.
    item_count = models.PositiveIntegerField(default=0, editable=False)
    members: models.ManyToManyField[Any, Any] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="QueueMember", related_name="annotation_queues"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def item_kind(self) -> ItemKind:
        return item_kind(self.kind)

    @property
    def lease_duration(self) -> timedelta:
        return timedelta(minutes=self.lease_minutes)


class QueueMember(models.Model):
    """An annotator's place in a queue; its row is the lock that serialises their claims."""

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queue_memberships"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "user"], name="queue_member_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.queue}"


class Item(models.Model):
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="items")
    payload = models.JSONField()
    external_id = models.CharField(max_length=200, blank=True)
    # Filled by the reward model through item_scores_set; NULL sorts last (then FIFO).
    uncertainty = models.FloatField(null=True, blank=True)
    random_key = models.FloatField(default=0.0)
    is_gold = models.BooleanField(default=False)
    gold_value = models.JSONField(null=True, blank=True)
    # Counters kept by the label services under the item's row lock.
    label_count = models.PositiveIntegerField(default=0)
    complete = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["queue", "complete", "id"], name="item_fifo"),
            models.Index(fields=["queue", "complete", "random_key"], name="item_random"),
            models.Index(fields=["queue", "complete", "uncertainty"], name="item_uncertainty"),
            # Gold picks walk only the gold items, not the whole queue in search of them.
            models.Index(fields=["queue", "id"], condition=Q(is_gold=True), name="item_gold"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_gold=False) | Q(gold_value__isnull=False), name="gold_has_value"
            ),
            # Items that come from elsewhere (a debate, a tree node, an import row) once each.
            models.UniqueConstraint(
                fields=["queue", "external_id"],
                condition=~Q(external_id=""),
                name="item_external_id_once",
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} of queue {self.queue_id}"

    def typed_payload(self, kind: ItemKind) -> Payload:
        return kind.payload(self.payload)


class Outcome(models.TextChoices):
    OPEN = "open"
    LABELLED = "labelled"
    SKIPPED = "skipped"
    EXPIRED = "expired"
    RELEASED = "released"


class Assignment(models.Model):
    """A lease: one annotator holds one item until they label it, skip it or it expires.

    An annotator holds at most two open leases in a queue: the current one, and one claimed
    `ahead` (the next item, which the labelling page already holds so a key swaps to it at
    once). The lease ahead counts against k like any other; it becomes the current one when
    the current one closes (claims.queue_item_claim)."""

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    ahead = models.BooleanField(
        default=False, help_text="claimed ahead: the next item, held while the current is open"
    )

    class Meta:
        indexes = [
            models.Index(fields=["item", "outcome", "expires_at"], name="assignment_live"),
            models.Index(fields=["annotator", "item", "outcome"], name="assignment_mine"),
        ]
        constraints = [
            # One current lease and at most one ahead: two tabs racing cannot hold more.
            models.UniqueConstraint(
                fields=["queue", "annotator", "ahead"],
                condition=Q(outcome="open"),
                name="one_open_lease_and_one_ahead",
            ),
        ]

    def __str__(self) -> str:
        return f"lease {self.pk}: item {self.item_id} to {self.annotator_id} ({self.outcome})"


class Label(models.Model):
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="labels")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="labels")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labels"
    )
    value = models.JSONField()
    # Time on the item as the page measured it; NULL when the client sent none (a page without
    # JavaScript, an API client that leaves it out): unknown, never guessed from the lease.
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    client_request_id = models.UUIDField()
    is_gold = models.BooleanField(default=False)
    gold_correct = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["queue", "annotator", "created_at"], name="label_mine")]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="one_label_per_annotator"),
            models.UniqueConstraint(
                fields=["annotator", "client_request_id"], name="label_request_once"
            ),
        ]

    def __str__(self) -> str:
        return f"label {self.pk} on item {self.item_id}"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ExportJob(models.Model):
    """One export, run by a Celery task; `spec` is an ExportSpec (annotations.exports)."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="export_jobs"
    )
    spec = models.JSONField()
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_done = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Written by the running worker; a RUNNING job silent for long has lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Runs claimed so far; fences a stalled worker's writes once the job was started again.
    attempt = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="exportjob_status_beat")]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)

    @property
    def percent(self) -> int:
        if self.status == JobStatus.DONE:
            return 100
        if not self.rows_total:
            return 0
        return min(100, int(100 * self.rows_done / self.rows_total))


class ApiToken(models.Model):
    """A bearer token for the API; only its SHA-256 is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="api_token_name_once")]

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"
