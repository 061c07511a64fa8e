from __future__ import annotations

import math

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from llm.models import GenerationState, LiveGeneration, ModelConfig

# Candidates a best-of-n speech may have: each is a row of the batched generation.
MAX_BEST_OF_N = 16

# Judge score: log2(p_correct) minus this much per judge turn that continued the debate
# (Michael et al. 2023).
JUDGE_TURN_PENALTY = 0.05


def judge_score(p_correct: float, judge_turns: int) -> float:
    """NYU's judge score: log2(p_correct) − JUDGE_TURN_PENALTY × judge turns."""
    return math.log2(p_correct) - JUDGE_TURN_PENALTY * judge_turns


def judge_was_correct(p_correct: float) -> bool:
    """A judge is correct when their final probability on the correct answer is above 50 %
    (50 % is not a choice, so it counts as wrong, as in the analytics)."""
    return p_correct > 0.5


class FinalProbabilities:
    """What a final answer (a live Judgment, any judge's Verdict) says once the debate's correct
    side is known: p correct, right or wrong, the judge score. None where no side is correct."""

    debate: Debate
    probability_a: int
    judge_turns: int

    @property
    def probability_correct(self) -> float | None:
        side = self.debate.correct_side
        if not side:
            return None
        return (self.probability_a if side == Side.A else 100 - self.probability_a) / 100

    @property
    def correct(self) -> bool | None:
        p = self.probability_correct
        return None if p is None else judge_was_correct(p)

    @property
    def score(self) -> float | None:
        p = self.probability_correct
        return None if p is None else judge_score(p, self.judge_turns)


class Protocol(models.TextChoices):
    DEBATE = "debate", "Debate (two debaters)"
    CONSULTANCY = "consultancy", "Consultancy (one consultant)"
    MARKET = "market", "Market making"


class TurnOrder(models.TextChoices):
    SIMULTANEOUS = "simultaneous"
    SEQUENTIAL = "sequential"


class RoundsMode(models.TextChoices):
    FIXED = "fixed", "A fixed number of rounds"
    JUDGE_ENDS = "judge_ends", "The judge ends it (up to the maximum)"


class Side(models.TextChoices):
    A = "a", "A"
    B = "b", "B"


class DebateStatus(models.TextChoices):
    WAITING_FOR_PRIOR = "waiting_for_prior", "waiting for the judge's prior"
    GENERATING = "generating", "debaters speaking"
    AWAITING_JUDGE = "awaiting_judge", "waiting for the judge"
    JUDGED = "judged"
    # A batch debate whose rounds are all spoken: judges (LLM, a queue) read the transcript.
    FINISHED = "finished", "debate over"
    # An imported room that never reached a verdict.
    INCOMPLETE = "incomplete", "never finished"


class Source(models.TextChoices):
    ARBITER = "arbiter", "Arbiter"
    NYU = "nyu-2023", "NYU 2023 (Michael et al.)"


class ProtocolPrompt(models.Model):
    """The debater prompt for a protocol, editable by researchers.

    Placeholders: {question} {answer_a} {answer_b} {my_answer} {other_answer} {passage}
    {speech_char_limit} {quote_char_limit} {round} {max_rounds}.
    """

    protocol = models.CharField(max_length=20, choices=Protocol.choices, unique=True)
    debater_system = models.TextField()
    debater_turn = models.TextField(
        help_text="the instruction that ends every request for a speech"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"prompts for {self.get_protocol_display()}"


class Debate(models.Model):
    question = models.TextField()
    answer_a = models.TextField()
    answer_b = models.TextField()
    correct_side = models.CharField(max_length=1, choices=Side.choices, blank=True)
    passage = models.TextField(blank=True, help_text="shown to debaters, hidden from the judge")
    protocol = models.CharField(max_length=20, choices=Protocol.choices, default=Protocol.DEBATE)
    turn_order = models.CharField(
        max_length=20, choices=TurnOrder.choices, default=TurnOrder.SIMULTANEOUS
    )
    rounds_mode = models.CharField(
        max_length=20, choices=RoundsMode.choices, default=RoundsMode.JUDGE_ENDS
    )
    max_rounds = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    speech_char_limit = models.PositiveIntegerField(
        default=750, validators=[MinValueValidator(50), MaxValueValidator(10_000)]
    )
    quote_char_limit = models.PositiveIntegerField(
        default=250, validators=[MaxValueValidator(10_000)]
    )
    # Null only for debates with human debaters (imported); forms still require it.
    debater_a_config = models.ForeignKey(
        ModelConfig,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        verbose_name="debater A model",
    )
    debater_b_config = models.ForeignKey(
        ModelConfig,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        verbose_name="debater B model",
    )
    # Consultancy: the answer the single consultant argues for (honest half of the time).
    consultant_side = models.CharField(max_length=1, choices=Side.choices, blank=True)
    # Null for imported rooms (their judges are names, not users) and batch debates.
    judge = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="debates_to_judge",
        null=True,
    )
    status = models.CharField(
        max_length=20, choices=DebateStatus.choices, default=DebateStatus.WAITING_FOR_PRIOR
    )
    current_round = models.PositiveSmallIntegerField(default=0)
    judge_started_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Research fields: where the debate came from and who took part, for imports and batches.
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.ARBITER)
    # The key of an imported room: re-importing it updates the debate instead of adding one.
    room_name = models.CharField(max_length=200, unique=True, null=True, blank=True)
    human_debaters = models.BooleanField(default=False)
    debater_a_name = models.CharField(max_length=200, blank=True)
    debater_b_name = models.CharField(max_length=200, blank=True)
    judge_name = models.CharField(max_length=200, blank=True)
    story_title = models.CharField(max_length=500, blank=True)
    included_in_paper = models.BooleanField(null=True, blank=True)
    has_transcript = models.BooleanField(default=True)
    batch = models.ForeignKey(
        "debate.DebateBatch", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="debates",
    )  # fmt: skip
    bank_question = models.ForeignKey(
        "debate.BankQuestion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Imported rooms' rules and offline judges, as published: debate.records.RoomExtras.
    extras = models.JSONField(default=dict, blank=True)
    best_of_n = models.PositiveSmallIntegerField(
        "best of n",
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_BEST_OF_N)],
        help_text="each speech: generate this many candidates and keep the one the active "
        "debate reward model scores highest (1: no choice)",
    )
    # A tournament's best-of-n entrants meet plain ones: debater B's n, when it is not A's.
    best_of_n_b = models.PositiveSmallIntegerField(
        "debater B's best of n",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_BEST_OF_N)],
        help_text="debate only: debater B's candidates a speech when they differ from A's "
        "(a tournament's best-of-n entrants); empty: the same as A",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["judge", "status"]),
            models.Index(fields=["source", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"debate {self.pk}: {self.question[:60]}"

    @property
    def sides(self) -> list[str]:
        if self.protocol == Protocol.CONSULTANCY:
            return [self.consultant_side]
        if self.protocol == Protocol.MARKET:
            return [Side.A]  # a market's kept arguments are stored as side A's speeches
        return [Side.A, Side.B]

    def answer(self, side: str) -> str:
        return self.answer_a if side == Side.A else self.answer_b

    def config_for(self, side: str) -> ModelConfig:
        if self.protocol != Protocol.DEBATE or side == Side.A:
            assert self.debater_a_config is not None
            return self.debater_a_config
        assert self.debater_b_config is not None
        return self.debater_b_config

    def best_of_n_for(self, side: str) -> int:
        """Candidates a speech of this side has (best-of-n; 1: no choice)."""
        if self.protocol == Protocol.DEBATE and side == Side.B and self.best_of_n_b is not None:
            return self.best_of_n_b
        return self.best_of_n

    @property
    def best_of_n_max(self) -> int:
        return max(self.best_of_n, self.best_of_n_b or 1)

    @property
    def last_round(self) -> bool:
        return self.current_round >= self.max_rounds


class SpeechStatus(models.TextChoices):
    QUEUED = "queued"
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"


class Speech(LiveGeneration):
    debate = models.ForeignKey(Debate, on_delete=models.CASCADE, related_name="speeches")
    round = models.PositiveSmallIntegerField()
    side = models.CharField(max_length=1, choices=Side.choices)
    status = models.CharField(
        max_length=10, choices=SpeechStatus.choices, default=SpeechStatus.QUEUED
    )
    text = models.TextField(blank=True)
    quotes = models.JSONField(default=list, blank=True)
    truncated = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    config_snapshot = models.JSONField(default=dict, blank=True)
    # Each claim by a worker counts up; a worker writes only while the count is still its own,
    # so one that was given up on (no heartbeat) cannot overwrite the attempt that replaced it.
    attempt = models.PositiveIntegerField(default=0, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta(LiveGeneration.Meta):
        ordering = ["round", "side"]
        verbose_name_plural = "speeches"
        constraints = [
            models.UniqueConstraint(fields=["debate", "round", "side"], name="one_speech_per_turn")
        ]

    def __str__(self) -> str:
        return f"speech {self.side.upper()} round {self.round} of debate {self.debate_id}"

    @property
    def stream_key(self) -> str:
        return f"speech-{self.pk}"

    @property
    def state(self) -> GenerationState:
        """The card's status line while it is not finished."""
        return self.phase_state(
            queued=self.status == SpeechStatus.QUEUED, element_id=f"{self.stream_key}-state"
        )


class SpeechCandidate(models.Model):
    """One candidate of a best-of-n speech. Researchers see them all; the judge only ever
    sees the chosen one, as the speech's text."""

    speech = models.ForeignKey(Speech, on_delete=models.CASCADE, related_name="candidates")
    index = models.PositiveSmallIntegerField()
    text = models.TextField(blank=True)
    truncated = models.BooleanField(default=False)
    finish_reason = models.CharField(max_length=10, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # None: no reward model was active when it was generated (the first candidate is kept).
    reward = models.FloatField(null=True, blank=True)
    reward_version = models.ForeignKey(
        "rewards.RewardVersion", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    chosen = models.BooleanField(default=False)

    class Meta:
        ordering = ["speech", "index"]
        constraints = [
            models.UniqueConstraint(fields=["speech", "index"], name="one_candidate_per_index")
        ]

    def __str__(self) -> str:
        return f"candidate {self.index} of {self.speech}"


class JudgeAction(models.TextChoices):
    CONTINUE = "continue"
    END = "end"


class JudgeTurn(models.Model):
    """The judge's probabilities after a round (round 0: the prior), and what they asked."""

    debate = models.ForeignKey(Debate, on_delete=models.CASCADE, related_name="judge_turns")
    round = models.PositiveSmallIntegerField()
    probability_a = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(99)]
    )
    message = models.TextField(blank=True)
    action = models.CharField(max_length=10, choices=JudgeAction.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["round"]
        constraints = [
            models.UniqueConstraint(fields=["debate", "round"], name="one_judge_turn_per_round")
        ]

    def __str__(self) -> str:
        return f"judge turn {self.round} of debate {self.debate_id}"

    @property
    def probability_b(self) -> int:
        return 100 - self.probability_a


class Judgment(FinalProbabilities, models.Model):
    debate = models.OneToOneField(Debate, on_delete=models.CASCADE, related_name="judgment")
    judge = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    probability_a = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(99)]
    )
    rationale = models.TextField()
    judge_turns = models.PositiveSmallIntegerField(help_text="turns that continued the debate")
    time_spent_s = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"judgment of debate {self.debate_id}"

    @property
    def probability_b(self) -> int:
        return 100 - self.probability_a
