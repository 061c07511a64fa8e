from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from llm.backends.base import GenerationParams, Usage
from llm.schemas import (
    Curves,
    DPOHyperparameters,
    MachineSettings,
    PolicyReport,
    PreferenceRow,
    PromptRow,
    RejectionSamplingHyperparameters,
    SFTHyperparameters,
    TrainingRow,
)

BUNDLED_CONFIG_NAME = "SmolLM2-135M-Instruct (bundled)"


class Backend(models.TextChoices):
    TRANSFORMERS = "transformers", "transformers (local model)"
    OPENAI = "openai", "OpenAI-compatible server"


class ModelConfig(models.Model):
    """A model and how to sample from it; debaters, decomposers and judges point at one."""

    name = models.CharField(max_length=100, unique=True)
    backend = models.CharField(max_length=20, choices=Backend.choices, default=Backend.TRANSFORMERS)
    model = models.CharField(
        max_length=500,
        help_text="transformers: a local checkpoint directory, a model id already in the "
        "offline Hugging Face cache, or bundled:smollm2-135m-instruct. "
        "openai: the model name the server expects.",
    )
    base_url = models.URLField(
        blank=True, help_text="openai only: the server's base URL, e.g. http://127.0.0.1:8080/v1"
    )
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="openai only: the name of the environment variable holding the API key",
    )
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(
        default=0.7, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    top_p = models.FloatField(
        default=0.95, validators=[MinValueValidator(0.01), MaxValueValidator(1.0)]
    )
    max_new_tokens = models.PositiveIntegerField(
        default=128, validators=[MinValueValidator(1), MaxValueValidator(8192)]
    )
    frequency_penalty = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)],
        help_text="lowers a token's score by this much for each time it was already "
        "generated (OpenAI's meaning; 0 = off). Curbs repeated lines.",
    )
    presence_penalty = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)],
        help_text="lowers a token's score by this much once it has been generated at all "
        "(0 = off). Nudges towards new words.",
    )
    seed = models.PositiveIntegerField(null=True, blank=True)
    stop_sequences = models.JSONField(default=list, blank=True)
    timeout_s = models.FloatField(
        default=120.0,
        validators=[MinValueValidator(1.0), MaxValueValidator(3600.0)],
        help_text="a call that runs longer fails with a timeout error",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def generation_params(self, **overrides: object) -> GenerationParams:
        values: dict[str, object] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
            "stop": tuple(self.stop_sequences),
            "timeout_s": self.timeout_s,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
        }
        values.update(overrides)
        return GenerationParams(**values)  # type: ignore[arg-type]


class GenerationPhase(models.TextChoices):
    """Where a generation that is not finished stands, as its worker last recorded it."""

    QUEUED = "queued", "queued"
    LOADING = "loading", "loading model"
    GENERATING = "generating", "generating"


@dataclass(frozen=True)
class GenerationState:
    """What the status line of an unfinished generation shows (templates/llm/_state.html).
    Built from the row (a page, a snapshot) or from a worker's progress message."""

    element_id: str
    phase: str
    elapsed_s: float
    tokens: int | None = None
    tokens_per_s: float | None = None

    @property
    def label(self) -> str:
        return GenerationPhase(self.phase).label

    @classmethod
    def from_progress(cls, stream: str, progress: dict[str, float]) -> GenerationState:
        """From the `progress` of a stream delta (core.streams.TextStreamPublisher)."""
        elapsed, tokens = float(progress["elapsed_s"]), int(progress["tokens"])
        return cls(
            element_id=f"{stream}-state", phase=GenerationPhase.GENERATING, elapsed_s=elapsed,
            tokens=tokens, tokens_per_s=tokens / elapsed if elapsed > 0 else None,
        )  # fmt: skip


class GenerationRecord(models.Model):
    """What one generation cost, as its backend reported it."""

    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    time_to_first_token_s = models.FloatField(null=True, blank=True)
    total_s = models.FloatField(null=True, blank=True)

    class Meta:
        abstract = True

    @staticmethod
    def usage_fields(usage: Usage | None) -> dict[str, object]:
        if usage is None:
            return {}
        return {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "time_to_first_token_s": usage.time_to_first_token_s,
            "total_s": usage.total_s,
        }


class LiveGeneration(GenerationRecord):
    """A generation someone watches, and where it stands while it runs: the worker sets
    `started_at` when it claims the row (the model loads next), `generating_at` once the
    model is ready, and counts `completion_tokens` as it saves the text."""

    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    generating_at = models.DateTimeField(null=True, blank=True, editable=False)
    # "length": the generation was cut at its token cap (shown as a mark, never in the text).
    finish_reason = models.CharField(max_length=10, blank=True, editable=False)

    class Meta(GenerationRecord.Meta):
        abstract = True

    @property
    def cut_at_token_cap(self) -> bool:
        return self.finish_reason == "length"

    def phase_state(self, *, queued: bool, element_id: str) -> GenerationState:
        """The status line of a row that is not finished (`queued`: no worker has it yet).
        Live tokens/s count from `generating_at` to the last save (`heartbeat_at`)."""
        now = timezone.now()
        created: datetime = getattr(self, "created_at", None) or now
        if queued or self.started_at is None:
            return GenerationState(element_id, GenerationPhase.QUEUED,
                                   (now - created).total_seconds())  # fmt: skip
        if self.generating_at is None:
            return GenerationState(element_id, GenerationPhase.LOADING,
                                   (now - self.started_at).total_seconds())  # fmt: skip
        saved: datetime | None = getattr(self, "heartbeat_at", None)
        tokens = self.completion_tokens
        rate = None
        if tokens and saved is not None and saved > self.generating_at:
            # The rate as of the last save, not diluted by the time since it.
            rate = tokens / (saved - self.generating_at).total_seconds()
        elapsed = (now - self.generating_at).total_seconds()
        return GenerationState(element_id, GenerationPhase.GENERATING, elapsed, tokens, rate)


class TrialStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ModelTrial(LiveGeneration):
    """One "Try it" completion: a researcher's prompt streamed through a config."""

    config = models.ForeignKey(ModelConfig, on_delete=models.CASCADE, related_name="trials")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    prompt = models.TextField()
    status = models.CharField(
        max_length=10, choices=TrialStatus.choices, default=TrialStatus.QUEUED
    )
    text = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Written by the running worker; a RUNNING trial silent for long has lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta(LiveGeneration.Meta):
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="trial_status_beat")]

    def __str__(self) -> str:
        return f"trial {self.pk} of {self.config}"

    @property
    def finished(self) -> bool:
        return self.status in (TrialStatus.DONE, TrialStatus.FAILED)

    @property
    def tokens_per_s(self) -> float | None:
        if not self.completion_tokens or not self.total_s:
            return None
        return self.completion_tokens / self.total_s

    @property
    def state(self) -> GenerationState:
        """The status line while it is not finished."""
        return self.phase_state(
            queued=self.status == TrialStatus.QUEUED, element_id=f"trial-{self.pk}-state"
        )


# --- training runs: new model configs with lineage ------------------------------------------
class TrainingKind(models.TextChoices):
    SFT_DISTIL = "sft-distil", "SFT on a distillation set"
    # Policy runs (llm/training.py dispatches on kind): their rows are preference pairs
    # (llm.schemas.PreferenceRow) or prompts (PromptRow) whose completions the worker samples.
    DPO = "dpo", "DPO on preference pairs"
    REJECTION_SAMPLING = "rejection-sampling", "rejection-sampling SFT"


class TrainingStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class TrainingRun(models.Model):
    """One fine-tune of a local model config, and the config it produced: the lineage record.

    A row is the job: QUEUED → RUNNING → DONE / FAILED, claimed with a conditional UPDATE
    (llm/training.py). The worker renews `lease_expires_at` as it steps; a RUNNING run whose
    lease expired has lost its worker and is failed by training_runs_fail_stale. The result
    config is created only after the checkpoint was saved whole and renamed into place, in
    the same transaction that marks the run DONE: a killed run leaves no config.
    """

    kind = models.CharField(max_length=20, choices=TrainingKind.choices)
    # What the new config will be called.
    name = models.CharField(max_length=100)
    parent = models.ForeignKey(ModelConfig, on_delete=models.PROTECT, related_name="training_runs")
    status = models.CharField(
        max_length=10, choices=TrainingStatus.choices, default=TrainingStatus.QUEUED
    )
    reason = models.TextField(blank=True, help_text="why it failed")
    # Where the rows came from, in words (e.g. "amplification distillation set, min rating 5").
    source = models.CharField(max_length=300, blank=True)
    # The rows (llm.schemas.TrainingRow), their count and SHA-256 of their canonical JSON.
    rows = models.JSONField(default=list, blank=True, editable=False)
    row_count = models.PositiveIntegerField(default=0)
    dataset_hash = models.CharField(max_length=64)
    train_rows = models.PositiveIntegerField(default=0)
    eval_rows = models.PositiveIntegerField(default=0)
    hyperparameters = models.JSONField(default=dict, blank=True)
    # What the worker chose for its machine (llm.schemas.MachineSettings); {} until it ran.
    machine = models.JSONField(default=dict, blank=True)
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    curves = models.JSONField(default=dict, blank=True)  # llm.schemas.Curves
    eval_loss_before = models.FloatField(null=True, blank=True)
    eval_loss_after = models.FloatField(null=True, blank=True)
    # Policy runs (DPO, rejection sampling): KL from the parent and proxy reward on held-out
    # prompts after training (llm.schemas.PolicyReport); {} until then.
    report = models.JSONField(default=dict, blank=True)
    checkpoint_path = models.CharField(max_length=500, blank=True)
    result = models.OneToOneField(
        ModelConfig, null=True, blank=True, on_delete=models.SET_NULL, related_name="trained_by"
    )
    attempt = models.PositiveSmallIntegerField(default=1)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    wall_time_s = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="training_run_lease")]

    def __str__(self) -> str:
        return f"training run {self.pk}: {self.name} ({self.status})"

    @property
    def running(self) -> bool:
        return self.status in (TrainingStatus.QUEUED, TrainingStatus.RUNNING)

    @property
    def percent(self) -> int:
        if self.status == TrainingStatus.DONE:
            return 100
        if not self.progress_total:
            return 0
        return min(100, int(100 * self.progress_step / self.progress_total))

    @property
    def typed_curves(self) -> Curves:
        return Curves.model_validate(self.curves or {})

    @property
    def is_policy_run(self) -> bool:
        return self.kind in (TrainingKind.DPO, TrainingKind.REJECTION_SAMPLING)

    @property
    def typed_hyperparameters(self) -> SFTHyperparameters:
        """The kind's own hyperparameters (DPO's and rejection sampling's extend SFT's)."""
        if self.kind == TrainingKind.DPO:
            return DPOHyperparameters.model_validate(self.hyperparameters)
        if self.kind == TrainingKind.REJECTION_SAMPLING:
            return RejectionSamplingHyperparameters.model_validate(self.hyperparameters)
        return SFTHyperparameters.model_validate(self.hyperparameters)

    @property
    def typed_report(self) -> PolicyReport | None:
        return PolicyReport.model_validate(self.report) if self.report else None

    @property
    def typed_pairs(self) -> list[PreferenceRow]:
        return [PreferenceRow.model_validate(row) for row in self.rows]

    @property
    def typed_prompts(self) -> list[PromptRow]:
        return [PromptRow.model_validate(row) for row in self.rows]

    @property
    def typed_machine(self) -> MachineSettings | None:
        return MachineSettings.model_validate(self.machine) if self.machine else None

    @property
    def typed_rows(self) -> list[TrainingRow]:
        return [TrainingRow.model_validate(row) for row in self.rows]
