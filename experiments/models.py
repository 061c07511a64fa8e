"""Oversight experiments: arms (conditions), participants who join by study link and are
randomised to one arm, the model assistance generated ahead for an arm, and each answer's
record (late, timed out, correct on gold).

An arm serves its items through its own rating queue (annotations): the claim rules there
(k, leases, skips) are the arm's, unforked. The arm queue's items are copies of the question
set's gold items, stored there as ordinary items; their gold stays here (ArmItem.source), so
nothing that annotations renders ever carries it.

An experiment's question set is either a rating queue (arms give assistance: none, critique,
suggestion) or a debate question bank (arms are protocols: direct, consultancy, debate). A
bank's arm items are question-judgment items (the question, the two answers in an order drawn
per arm and item, and the consultancy's or debate's transcript, generated ahead by a debate
batch); the correct side stays here (ArmItem.correct_side), the passage in the bank.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from annotations.models import Item, Label, Queue
from debate.models import BankQuestion, Debate, DebateBatch, QuestionBank
from llm.models import ModelConfig

# The longest per-item time limit an arm may have: an hour on one item is not a time limit.
MAX_TIME_LIMIT_S = 3600
# A label this many seconds past the limit still counts (network, a slow key press).
DEFAULT_GRACE_S = 2


class Assistance(models.TextChoices):
    NONE = "none", "Unassisted"
    CRITIQUE = "critique", "Model critique of each response"
    SUGGESTION = "suggestion", "Model's suggested answer and confidence"


class ArmProtocol(models.TextChoices):
    """A question-bank arm's condition: how the participant meets the question."""

    DIRECT = "direct", "Direct answer (no debaters)"
    CONSULTANCY = "consultancy", "Consultancy (one consultant)"
    DEBATE = "debate", "Debate (two debaters)"


# Protocols whose items carry a transcript, generated ahead by a debate batch.
TRANSCRIPT_PROTOCOLS = (ArmProtocol.CONSULTANCY, ArmProtocol.DEBATE)


class Experiment(models.Model):
    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=60, unique=True, help_text="the study link's /join/<slug>/")
    question_set = models.ForeignKey(
        Queue,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="experiments",
        help_text="a rating queue; its gold items are the experiment's items",
    )
    question_bank = models.ForeignKey(
        QuestionBank,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="or a debate question bank: its questions (with their correct answers) are "
        "the items, and the arms are protocols",
    )
    consent = models.TextField(help_text="Markdown; shown before anything else")
    instructions = models.TextField(blank=True, help_text="Markdown; shown after consent")
    completion_code = models.CharField(max_length=64)
    completion_url = models.URLField(
        blank=True, help_text="where a participant goes at the end (e.g. Prolific's return URL)"
    )
    link_open = models.BooleanField(default=True, help_text="closed: the study link refuses")
    seed = models.BigIntegerField(help_text="the randomisation's seed (recorded, reproducible)")
    labels_per_item = models.PositiveSmallIntegerField(
        default=50,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="k of each arm's queue: participants per arm who may answer an item",
    )
    late_grace_s = models.PositiveSmallIntegerField(
        default=DEFAULT_GRACE_S, validators=[MaxValueValidator(60)]
    )
    late_excluded = models.BooleanField(
        default=True, help_text="leave late labels out of the primary metric"
    )
    expert_gold = models.BooleanField(
        default=False,
        help_text="the gold labels are experts' answers: the sandwich score uses them as P_expert",
    )
    frozen_at = models.DateTimeField(
        null=True, blank=True, help_text="set when the first participant joins"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(question_set__isnull=True, question_bank__isnull=False)
                | Q(question_set__isnull=False, question_bank__isnull=True),
                name="experiment_one_question_set",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None

    @property
    def on_bank(self) -> bool:
        return self.question_bank_id is not None


class Arm(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    assistance = models.CharField(max_length=12, choices=Assistance.choices)
    protocol = models.CharField(
        max_length=12,
        choices=ArmProtocol.choices,
        blank=True,
        help_text="a question-bank arm's protocol; empty for a rating-queue arm",
    )
    model_config = models.ForeignKey(
        ModelConfig, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    prompt = models.TextField(blank=True, help_text="the assistance prompt; {item} is the item")
    time_limit_s = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TIME_LIMIT_S)],
        help_text="seconds per item; empty for none",
    )
    queue = models.OneToOneField(Queue, on_delete=models.PROTECT, related_name="experiment_arm")
    # Consultancy and debate arms: the batch that speaks their transcripts ahead of
    # participants, and when its transcripts became the arm's items (the study link refuses
    # newcomers until every such arm is ready).
    debate_batch = models.ForeignKey(
        DebateBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    items_ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["experiment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "position"], name="arm_position_once"),
            models.UniqueConstraint(fields=["experiment", "name"], name="arm_name_once"),
            models.CheckConstraint(
                condition=Q(assistance="none") | Q(model_config__isnull=False),
                name="assisted_arm_has_model",
            ),
            models.CheckConstraint(
                condition=~Q(protocol__in=TRANSCRIPT_PROTOCOLS) | Q(model_config__isnull=False),
                name="protocol_arm_has_model",
            ),
            models.CheckConstraint(
                condition=Q(protocol="") | Q(assistance="none"),
                name="protocol_arm_unassisted",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment}: {self.name}"

    @property
    def assisted(self) -> bool:
        return self.assistance != Assistance.NONE

    @property
    def transcripts(self) -> bool:
        """A consultancy or debate arm: its items carry a transcript generated ahead."""
        return self.protocol in TRANSCRIPT_PROTOCOLS

    @property
    def unaided(self) -> bool:
        """No model material beside the item: the control of the comparisons."""
        return not self.assisted and not self.transcripts

    @property
    def condition(self) -> str:
        """The arm's condition as the researcher's page names it (never a participant's)."""
        return self.get_protocol_display() if self.protocol else self.get_assistance_display()

    @property
    def prompt_version(self) -> str:
        """The cache key's prompt part: a digest of the prompt text, so an edit regenerates."""
        return hashlib.sha256(self.prompt.encode()).hexdigest()[:12]


class ArmItem(models.Model):
    """One item of an arm's queue and what it copies: the question-set item (with gold), or
    the bank question with the side its correct answer was shown on (and, for consultancy and
    debate arms, the batch debate whose transcript it carries)."""

    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="arm_items")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    bank_question = models.ForeignKey(
        BankQuestion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    debate = models.ForeignKey(
        Debate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    correct_side = models.CharField(max_length=1, blank=True, help_text="a or b (bank items)")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["arm", "source"], name="arm_item_source_once"),
            models.UniqueConstraint(
                fields=["arm", "bank_question"], name="arm_item_bank_question_once"
            ),
            models.CheckConstraint(
                condition=Q(source__isnull=False, bank_question__isnull=True)
                | Q(source__isnull=True, bank_question__isnull=False, correct_side__in=["a", "b"]),
                name="arm_item_copies_one_thing",
            ),
        ]

    def __str__(self) -> str:
        what = self.source_id if self.source_id is not None else f"q{self.bank_question_id}"
        return f"item {what} in arm {self.arm_id}"

    @property
    def question_id(self) -> int:
        """The question-set item or bank question this copies (the exports' `item`)."""
        found = self.source_id if self.source_id is not None else self.bank_question_id
        assert found is not None  # arm_item_copies_one_thing
        return found


class Participant(models.Model):
    """An outside participant: an account bound to their external (Prolific) id, no password."""

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="participants"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="participant"
    )
    external_id = models.CharField(max_length=100)
    study_id = models.CharField(max_length=100)
    session_id = models.CharField(max_length=100)
    # The join order (0, 1, …): with the seed, it decides the arm (assignment.arm_for).
    sequence = models.PositiveIntegerField()
    arm = models.ForeignKey(Arm, on_delete=models.PROTECT, related_name="participants")
    joined_at = models.DateTimeField(default=timezone.now)
    consented_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["experiment", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "external_id"], name="participant_external_id_once"
            ),
            models.UniqueConstraint(
                fields=["experiment", "sequence"], name="participant_sequence_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} in {self.experiment}"


class Response(models.Model):
    """A participant's answer to one item (or its timing out), as the server saw it."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="responses")
    arm_item = models.ForeignKey(ArmItem, on_delete=models.CASCADE, related_name="responses")
    label = models.OneToOneField(
        Label, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    served_at = models.DateTimeField(help_text="when the item's lease began")
    answered_at = models.DateTimeField()
    time_ms = models.PositiveIntegerField(null=True, blank=True)
    late = models.BooleanField(default=False, help_text="after the limit plus the grace")
    timed_out = models.BooleanField(default=False, help_text="no answer: the time ran out")
    correct = models.BooleanField(null=True, blank=True, help_text="the label equals gold")
    probability_correct = models.FloatField(
        null=True,
        blank=True,
        help_text="question-bank arms: the participant's probability on the correct answer",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "arm_item"], name="response_once_per_item"
            ),
        ]

    def __str__(self) -> str:
        return f"response {self.pk} of {self.participant_id}"


class AssistanceText(models.Model):
    """A critique or suggestion for one question-set item, cached per (item, model config,
    prompt version, kind): arms sharing them share the generation."""

    source = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    model_config = models.ForeignKey(ModelConfig, on_delete=models.CASCADE, related_name="+")
    prompt_version = models.CharField(max_length=12)
    kind = models.CharField(max_length=12, choices=Assistance.choices)
    text = models.TextField()
    # A suggestion's answer as a label value of the item's kind, when the model gave one.
    suggested_value = models.JSONField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "model_config", "prompt_version", "kind"],
                name="assistance_cached_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of item {self.source_id}"


class Flag(models.TextChoices):
    HELPED = "helped", "Helped"
    WRONG = "wrong", "Wrong"


class AssistanceFlag(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="flags")
    assistance = models.ForeignKey(AssistanceText, on_delete=models.CASCADE, related_name="flags")
    flag = models.CharField(max_length=8, choices=Flag.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "assistance", "flag"], name="assistance_flag_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flag} on {self.assistance_id}"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class AssistanceJob(models.Model):
    """Generates an arm's assistance for all its items ahead of participants (a Celery job)."""

    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="assistance_jobs")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    items_total = models.PositiveIntegerField(default=0)
    items_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"assistance job {self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == JobStatus.DONE:
            return 100
        if not self.items_total:
            return 0
        return min(100, int(100 * self.items_done / self.items_total))
