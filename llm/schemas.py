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
