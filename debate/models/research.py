"""Debate research at scale: question banks, batches of AI debates, and verdicts — every final
judgment of a debate (a live human judge, an imported room's judge or offline judge, an LLM
judge) as one row, so analytics read one table whatever the debate's origin."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from debate.models.live import Debate, FinalProbabilities
from llm.models import ModelConfig


class QuestionBank(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BankQuestion(models.Model):
    """One QuALITY-style question: a passage, its options, the gold option."""

    bank = models.ForeignKey(QuestionBank, on_delete=models.CASCADE, related_name="questions")
    line = models.PositiveIntegerField(help_text="line number in the imported file")
    title = models.CharField(max_length=500, blank=True)
    passage = models.TextField()
    question = models.TextField()
    options = models.JSONField(help_text="the answer options, in order")
    gold_index = models.PositiveSmallIntegerField()
    # The distractor a two-answer debate uses; None: the first option that is not gold.
    distractor_index = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["bank", "line"]
        constraints = [
            models.UniqueConstraint(fields=["bank", "line"], name="one_question_per_bank_line")
        ]

    def __str__(self) -> str:
        return f"{self.bank} line {self.line}: {self.question[:60]}"

    @property
    def distractor(self) -> int:
        if self.distractor_index is not None:
            return self.distractor_index
        return next(i for i in range(len(self.options)) if i != self.gold_index)


class BatchStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class DebateBatch(models.Model):
    """A job: N AI debates from a question bank, then their judges. Claimed by a worker with
    a conditional UPDATE (queued → running, attempt + 1); `spec` is a debate.records.BatchSpec."""

    name = models.CharField(max_length=200)
    bank = models.ForeignKey(QuestionBank, on_delete=models.PROTECT, related_name="batches")
    spec = models.JSONField()
    llm_judge_config = models.ForeignKey(
        ModelConfig, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name="LLM judge model",
    )  # fmt: skip
    judge_prompt = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=BatchStatus.choices, default=BatchStatus.QUEUED
    )
    steps_total = models.PositiveIntegerField(default=0)
    steps_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # Each claim is a new attempt; a run whose heartbeat stops (a killed worker) is queued again
    # by debate.research.batches.batches_requeue_stale, and the one it replaced stops writing.
    attempt = models.PositiveIntegerField(default=0, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "debate batches"

    def __str__(self) -> str:
        return f"batch {self.pk}: {self.name}"

    @property
    def percent(self) -> int:
        if not self.steps_total:
            return 100 if self.status == BatchStatus.DONE else 0
        return min(100, round(100 * self.steps_done / self.steps_total))

    @property
    def finished(self) -> bool:
        return self.status in (BatchStatus.DONE, BatchStatus.FAILED)


class VerdictKind(models.TextChoices):
    HUMAN = "human", "human judge"
    OFFLINE = "offline", "offline human judge"
    LLM = "llm", "LLM judge"


class Verdict(FinalProbabilities, models.Model):
    """A judge's final probabilities on a debate."""

    debate = models.ForeignKey(Debate, on_delete=models.CASCADE, related_name="verdicts")
    kind = models.CharField(max_length=10, choices=VerdictKind.choices)
    judge_name = models.CharField(max_length=200)
    judge_config = models.ForeignKey(
        ModelConfig, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    probability_a = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(99)]
    )
    judge_turns = models.PositiveSmallIntegerField(default=0)
    rationale = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["debate", "kind", "judge_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["debate", "kind", "judge_name"], name="one_verdict_per_judge"
            )
        ]
        indexes = [models.Index(fields=["kind", "debate"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.judge_name} on debate {self.debate_id}"

    @property
    def probability_b(self) -> int:
        return 100 - self.probability_a
