"""The market protocol (Hubinger 2020, "AI safety via market making"): M predicts the judge's
final P(A) before each argument; Adv writes n candidate arguments; M scores each one; the one
that moves M's prediction most is kept and enters the transcript as a Speech (so quotes,
transcripts, the judging page and the LLM judge are the debate's own). Everything else here —
M's predictions and the discarded candidates — is for researchers only: no judge-facing page,
fragment, websocket frame or API response ever carries it."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from debate.models.live import Debate, Speech
from llm.models import ModelConfig

MAX_MARKET_CANDIDATES = 16


class ProbabilityMethod(models.TextChoices):
    LOGPROBS = "logprobs", "option-token log-probabilities"
    VOTES = "votes", "sampled one-letter votes (the backend gives no log-probabilities)"


class MarketStop(models.TextChoices):
    CONVERGED = "converged", "converged (|Δp| < ε for k steps)"
    STEP_LIMIT = "step_limit", "step limit reached"


class Market(models.Model):
    """A market's setting and outcome. Adv is the debate's debater A model; M is `predictor`."""

    debate = models.OneToOneField(Debate, on_delete=models.CASCADE, related_name="market")
    # Null only for an imported market whose M is not a config here; its name stays.
    predictor_config = models.ForeignKey(
        ModelConfig, on_delete=models.PROTECT, related_name="+", null=True,
        verbose_name="M (predictor)",
    )  # fmt: skip
    predictor_name = models.CharField(max_length=200)
    epsilon = models.FloatField(help_text="stop when |Δp| < ε for `patience` steps in a row")
    patience = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    candidates = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_MARKET_CANDIDATES)]
    )
    # M's p_0: its prediction of the judge's final P(A) before any argument — the deployed answer.
    initial_probability_a = models.FloatField(null=True, blank=True)
    initial_method = models.CharField(max_length=10, choices=ProbabilityMethod.choices, blank=True)
    stop_reason = models.CharField(max_length=12, choices=MarketStop.choices, blank=True)
    # A market launched on its own (not in a batch): when a worker claimed its run
    # (debate.research.markets.market_run); a second delivery finds it set and stops.
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Each claim counts up, and the run beats once a step: a run silent for MARKET_STALE_AFTER
    # (its worker killed) is sent again by the sweeper, and the one it replaced stops.
    attempt = models.PositiveIntegerField(default=0, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return f"market of debate {self.debate_id}"


class MarketStep(models.Model):
    """Step t: M's p before the argument, the kept argument (a Speech) and M's p after it."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="steps")
    step = models.PositiveSmallIntegerField()
    probability_before = models.FloatField(help_text="M's P(A) before this step's argument")
    probability_after = models.FloatField(help_text="M's P(A) after the kept argument")
    method = models.CharField(max_length=10, choices=ProbabilityMethod.choices)
    speech = models.OneToOneField(
        Speech, on_delete=models.SET_NULL, null=True, blank=True, related_name="market_step"
    )

    class Meta:
        ordering = ["market", "step"]
        constraints = [
            models.UniqueConstraint(fields=["market", "step"], name="one_market_step_per_number")
        ]

    def __str__(self) -> str:
        return f"step {self.step} of {self.market}"

    @property
    def move(self) -> float:
        return abs(self.probability_after - self.probability_before)


class MarketCandidate(models.Model):
    """One of Adv's candidate arguments at a step, and what M predicts after reading it."""

    step = models.ForeignKey(MarketStep, on_delete=models.CASCADE, related_name="candidates")
    index = models.PositiveSmallIntegerField()
    argued_side = models.CharField(max_length=1, help_text="the answer Adv was asked to argue")
    text = models.TextField(blank=True)
    predicted_probability_a = models.FloatField()
    option_mass = models.FloatField(null=True, blank=True)
    kept = models.BooleanField(default=False)

    class Meta:
        ordering = ["step", "index"]
        constraints = [
            models.UniqueConstraint(fields=["step", "index"], name="one_market_candidate_per_index")
        ]

    def __str__(self) -> str:
        return f"candidate {self.index} of {self.step}"
