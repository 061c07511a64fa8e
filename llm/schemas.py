"""The JSON columns of the llm app's training runs, read and written only through these."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainingRow(BaseModel):
    """One supervised example in TRL's prompt/completion format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1)
    completion: str = Field(min_length=1)


class SFTHyperparameters(BaseModel):
    """What an SFT run trains with. `max_steps` bounds the run (0: `epochs` over the rows);
    `lora` is decided by the base's size when the run starts (llm.training.LORA_ABOVE_PARAMS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(default=5e-5, gt=0, le=1e-2)
    epochs: int = Field(default=1, ge=1, le=20)
    max_steps: int = Field(default=0, ge=0, le=100_000)
    batch_size: int = Field(default=8, ge=1, le=128)
    max_length: int = Field(default=256, ge=16, le=4096)
    eval_percent: int = Field(default=10, ge=5, le=50)
    eval_every_steps: int = Field(default=0, ge=0, le=100_000)  # 0: before and after only
    seed: int = Field(default=0, ge=0)
    lora_rank: int = Field(default=16, ge=1, le=256)


class PreferenceRow(BaseModel):
    """One preference pair in TRL's plain prompt/chosen/rejected format (DPO runs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1)
    chosen: str = Field(min_length=1)
    rejected: str = Field(min_length=1)


class PromptRow(BaseModel):
    """One prompt of a rejection-sampling run's prompt set: its completions are sampled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1)


class PolicyHyperparameters(SFTHyperparameters):
    """What both policy kinds (DPO, rejection sampling) add to an SFT run's settings: an
    optional *gold* reward-model version (its id; `gold_label` names it) that the report
    scores both policies' samples with, beside the proxy. Never the proxy's own version."""

    gold_version: int | None = Field(default=None, ge=1)
    gold_label: str = ""


class DPOHyperparameters(PolicyHyperparameters):
    """A policy run's settings plus DPO's `beta` (how far the policy may move from its
    reference: larger keeps it closer). TRL's sigmoid loss; the reference is the parent.
    `reward_version` (optional) is the proxy reward model the report scores samples with."""

    learning_rate: float = Field(default=5e-6, gt=0, le=1e-2)
    batch_size: int = Field(default=4, ge=1, le=128)
    beta: float = Field(default=0.1, gt=0, le=10)
    # The reward-model version whose proxy reward the report gives (None: no proxy reward).
    reward_version: int | None = Field(default=None, ge=1)
    reward_label: str = ""


# Completions sampled per prompt by a rejection-sampling run (best of n kept).
RS_MIN_N = 2
RS_MAX_N = 64


class RejectionSamplingHyperparameters(PolicyHyperparameters):
    """A policy run's settings plus how its rows are made: `n` completions a prompt sampled
    from the parent at `sample_temperature` (at most `sample_max_new_tokens` tokens each),
    scored by reward-model version `reward_version` (its id; `reward_label` names it), the
    best kept."""

    n: int = Field(default=4, ge=RS_MIN_N, le=RS_MAX_N)
    sample_temperature: float = Field(default=1.0, gt=0, le=2.0)
    sample_max_new_tokens: int = Field(default=64, ge=1, le=1024)
    reward_version: int = Field(ge=1)
    reward_label: str = ""


class ReportSample(BaseModel):
    """One held-out prompt with a sample of the new policy and one of its parent (drawn at
    temperature 1): what a blind pairwise evaluation compares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    new: str
    parent: str


class PolicyReport(BaseModel):
    """What a policy run did to its parent, on held-out prompts: KL(new ‖ parent) estimated
    from the new policy's own samples, and the proxy and (where one was chosen) gold reward of
    both policies' samples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompts: int  # held-out prompts
    samples_per_prompt: int
    kl_mean: float  # nats a sample: mean of log p_new(y|x) − log p_parent(y|x)
    kl_low: float | None = None  # 95 % bootstrap interval over prompts
    kl_high: float | None = None
    kl_method: str = ""
    proxy_reward_version: int | None = None
    proxy_reward_label: str = ""
    proxy_new: float | None = None  # mean proxy reward of the new policy's samples
    proxy_parent: float | None = None
    proxy_diff_low: float | None = None  # 95 % bootstrap interval of new − parent
    proxy_diff_high: float | None = None
    gold_reward_version: int | None = None  # the gold reward model, scored the same way
    gold_reward_label: str = ""
    gold_new: float | None = None
    gold_parent: float | None = None
    gold_diff_low: float | None = None
    gold_diff_high: float | None = None
    seconds: float = 0.0
    samples: list[ReportSample] = Field(default_factory=list)

    @property
    def gain_not_in_gold(self) -> bool:
        """The proxy's new − parent interval lies above zero and the gold's does not: the gain
        the run was trained for is the proxy's alone (over-optimisation, or a proxy error)."""
        proxy_up = self.proxy_diff_low is not None and self.proxy_diff_low > 0
        gold_up = self.gold_diff_low is not None and self.gold_diff_low > 0
        return proxy_up and self.gold_diff_low is not None and not gold_up


class CurvePoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    step: int
    loss: float


class Curves(BaseModel):
    """Train loss as the trainer logged it, eval loss on the held-out rows (step 0: before
    training)."""

    model_config = ConfigDict(extra="forbid")

    train: list[CurvePoint] = Field(default_factory=list)
    eval: list[CurvePoint] = Field(default_factory=list)


class MachineSettings(BaseModel):
    """What the worker chose for its machine, recorded beside the hyperparameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dtype: str  # float32 or bfloat16 (llm.backends.transformers_backend.compute_dtype)
    bf16_autocast: bool
    activation_checkpointing: bool
    lora: bool
    parameters: int  # of the base model
    trainable_parameters: int
    torch_threads: int
