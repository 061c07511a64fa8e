"""The JSON columns of the rewards app, read and written only through these models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rewards.overoptimisation import Analysis


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_length: int = Field(default=128, ge=16, le=512)
    learning_rate: float = Field(default=1e-2, gt=0, le=1.0)
    epochs: int = Field(default=1, ge=1, le=50)
    steps: int = Field(default=300, ge=1, le=100_000)  # fast: full-batch steps of the head
    batch_size: int = Field(default=16, ge=1, le=512)
    weight_decay: float = Field(default=1e-3, ge=0, le=1.0)
    seed: int = 0


class CalibrationBin(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    predicted: float  # mean P(chosen) in the bin
    observed: float  # share of the bin's pairs where that side was chosen
    count: int


class Metrics(BaseModel):
    """What a version's run measured; `None` where it did not get that far."""

    model_config = ConfigDict(extra="forbid")

    train_pairs: int = 0
    train_ai_pairs: int = 0  # of the training pairs, those from AI labels (RLAIF)
    heldout_pairs: int = 0  # human pairs, always
    heldout_accuracy: float | None = None
    heldout_correct: int | None = None  # pairs it got right (None: runs before it was kept)
    # The active version's accuracy on the very same held-out pairs, when there was one.
    baseline_accuracy: float | None = None
    baseline_correct: int | None = None
    baseline_version: int | None = None
    # The paired comparison: pairs only the candidate got right, only the baseline did.
    wins: int = 0
    losses: int = 0
    p_value: float | None = None
    loss_curve: list[tuple[int, float]] = Field(default_factory=list)
    calibration: list[CalibrationBin] = Field(default_factory=list)
    ece: float | None = None
    truncated_sequences: int = 0
    embedded_texts: int = 0  # fast: texts embedded this run (the rest came from the cache)
    # Gold comparison items not trained on: the version's agreement with gold.
    gold_pairs: int = 0
    gold_correct: int | None = None
    # The raters' length bias, in its scores (rewards/training.py length_bias): of the
    # held-out pairs of unequal length it got wrong, those where it preferred the longer;
    # Spearman's rho of (score longer − score shorter) against |log length ratio|.
    length_wrong_pairs: int = 0
    length_wrong_longer: int = 0
    length_rho: float | None = None
    length_rho_p: float | None = None


class Readiness(BaseModel):
    """Are a reward model's labels enough to train and evaluate a version? Pairs as the
    next run would split them; `labels_needed` counts one a/b label on a new item as one
    pair (0: ready)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_pairs: int
    heldout_pairs: int
    min_train_pairs: int
    min_heldout_pairs: int
    labels_needed: int
    heldout_percent: int
    watermark: int  # the newest label id counted

    @property
    def ready(self) -> bool:
        return self.labels_needed == 0


class AnalysisRecord(BaseModel):
    """A best-of-n experiment's curves and fit for one proxy version (BestOfNExperiment.
    analysis holds one per proxy); the numbers are rewards.overoptimisation.Analysis."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    proxy_version_id: int
    proxy_name: str  # e.g. "helpfulness v3"
    proxy_labels: int  # the labels that version trained on
    analysis: Analysis


class BlindSides(BaseModel):
    """Which side of each item of a blind evaluation is the new policy's (PolicyEval)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    new: dict[int, Literal["a", "b"]]  # item id → side


class HumanGoldPair(BaseModel):
    """One blind pair of a human gold: on prompt `prompt_index`, sample `best` (the proxy's
    best of a seeded n-subset) against sample `base` (one seeded draw: best-of-1), best-of-n
    on `side`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_index: int
    n: int
    best: int
    base: int
    side: Literal["a", "b"]


class HumanGoldPairs(BaseModel):
    """HumanGold.pairs: item id → its pair; `identical` counts pairs drawn but not queued
    because both responses were the same text (a tie nobody needs to be asked about)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    proxy_version_id: int
    items: dict[int, HumanGoldPair]
    identical: int = 0
