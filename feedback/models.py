"""AI feedback: constitutions (versioned principles), model annotators on rating queues, their
labelling runs, and the labels they wrote.

AI labels live here, never in annotations.Label: by default they count toward no item's k,
hold no lease and take no human's place in a queue. A researcher may choose otherwise per model
annotator (`counts_toward_k`): its label then stands for one of the k, so an item it labelled
finishes with k − 1 human labels and no further person is given it. Each AI label carries its
provenance: the run (model config as it was when the run started, the constitution version,
the prompt template), the principle, the exact prompt of each order, what the model answered,
and the probability read from it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

# A principle is a short text: one line of a constitution, not a second prompt.
PRINCIPLE_MAX_CHARS = 500
MAX_PRINCIPLES = 20


class Constitution(models.Model):
    """A named list of principles; editing it adds a version and keeps the old ones."""

    name = models.CharField(max_length=200, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def latest_version(self) -> ConstitutionVersion | None:
        return self.versions.order_by("-number").first()


class ConstitutionVersion(models.Model):
    constitution = models.ForeignKey(
        Constitution, on_delete=models.CASCADE, related_name="versions"
    )
    number = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["constitution", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["constitution", "number"], name="constitution_version_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.constitution.name} v{self.number}"


class Principle(models.Model):
    version = models.ForeignKey(
        ConstitutionVersion, on_delete=models.CASCADE, related_name="principles"
    )
    position = models.PositiveSmallIntegerField()
    text = models.CharField(max_length=PRINCIPLE_MAX_CHARS)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="principle_position_once")
        ]

    def __str__(self) -> str:
        return f"{self.position + 1}. {self.text[:60]}"

    @property
    def short(self) -> str:
        return f"P{self.position + 1}"


class ModelAnnotator(models.Model):
    """A model that labels one queue's items under a constitution."""

    queue = models.ForeignKey(
        "annotations.Queue", on_delete=models.CASCADE, related_name="model_annotators"
    )
    name = models.CharField(max_length=100)
    model_config = models.ForeignKey(
        "llm.ModelConfig", on_delete=models.PROTECT, related_name="model_annotators"
    )
    constitution = models.ForeignKey(
        Constitution, on_delete=models.PROTECT, related_name="model_annotators"
    )
    prompt = models.TextField(
        blank=True,
        help_text="the question asked for each principle and item; empty: the queue kind's "
        "default. $principle and the item's fields ($prompt, $response_a, … ) are filled in.",
    )
    # AI first, people where it matters (feedback/routing.py).
    shortcut_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="items the model labelled with at least this probability need fewer human "
        "labels (empty: every item needs the queue's k)",
    )
    shortcut_labels = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="human labels such an item needs",
    )
    counts_toward_k = models.BooleanField(
        default=False,
        verbose_name="counts as one of the k labels",
        help_text="the model's label stands for one of the queue's k labels: an item it labelled "
        "(naming an option) finishes with one human label fewer, and no further person is "
        "given it (off: AI labels change no human's claims and no item's k)",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["queue", "name"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "name"], name="model_annotator_name_once")
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.queue}"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ProbabilityMethod(models.TextChoices):
    LOGPROBS = "logprobs", "option-token log-probabilities (one forward pass)"
    VOTES = "votes", "sampled votes (the server gives no log-probabilities)"


class LabellingRun(models.Model):
    """One model annotator over its queue's items under one constitution version: a job row
    (QUEUED → RUNNING → DONE/FAILED), claimed with a conditional UPDATE."""

    annotator = models.ForeignKey(ModelAnnotator, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(ConstitutionVersion, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    # The model config's fields and the prompt template as they were when the run started:
    # the config may be edited later, the labels must still say what wrote them.
    model_snapshot = models.JSONField(default=dict)
    prompt_template = models.TextField()
    method = models.CharField(max_length=10, choices=ProbabilityMethod.choices, blank=True)
    items_total = models.PositiveIntegerField(default=0)
    items_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One run of an annotator at a time: a double click starts nothing twice.
            models.UniqueConstraint(
                fields=["annotator"],
                condition=Q(status__in=["queued", "running"]),
                name="labelling_run_one_open",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.annotator.name} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (RunStatus.DONE, RunStatus.FAILED)

    @property
    def percent(self) -> int:
        if self.status == RunStatus.DONE:
            return 100
        if not self.items_total:
            return 0
        return min(100, int(100 * self.items_done / self.items_total))


class AILabel(models.Model):
    """One principle's reading of one item by one run.

    `value` is the kind's label value (e.g. {"choice": "a"}), NULL when the model named no
    option (recorded as such, never as 50 %). `probability`: on comparisons P(A is better),
    combined over both orders; on ratings the probability of the rating given. `orders` holds
    each order asked: its prompt, the probabilities read and the raw replies (untrusted).
    """

    run = models.ForeignKey(LabellingRun, on_delete=models.CASCADE, related_name="labels")
    item = models.ForeignKey("annotations.Item", on_delete=models.CASCADE, related_name="+")
    principle = models.ForeignKey(Principle, on_delete=models.PROTECT, related_name="+")
    value = models.JSONField(null=True, blank=True)
    probability = models.FloatField(null=True, blank=True)
    distribution = models.JSONField(default=list, blank=True)
    orders = models.JSONField(default=list)
    # The two orders chose apart (position bias at work): the swapped responses of a
    # comparison, the reversed scale of a rating. NULL when an order named no option.
    orders_disagree = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "AI label"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "item", "principle"], name="ai_label_once")
        ]
        indexes = [models.Index(fields=["item", "run"], name="ai_label_item")]

    def __str__(self) -> str:
        return f"AI label {self.pk} on item {self.item_id}"

    @property
    def named_option(self) -> bool:
        return self.value is not None

    def scalar(self, field: str) -> Any:
        return None if self.value is None else self.value.get(field)
