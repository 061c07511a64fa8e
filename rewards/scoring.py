"""Rewards from a version's checkpoint, batched: one function (`version_rewards`) behind the
scoring API (policy training) and the worker's automatic judge of debates
(rewards/auto_judge.py), so the two give the same numbers for the same texts.

Where the API's scoring runs: in the API's own process (config/api_asgi.py), the one place
the web side loads a model, because the issue asks for scores served on request and a round trip
through Celery would put a broker hop and a solo training worker in front of every batch.
torch and transformers are imported on the first call only, so a page process never loads
them. Each process keeps the few checkpoints it served last (rewards/ml.py's cache, keyed
by the checkpoint path): when a version is promoted or rolled back, the next request reads
the new active version from the database and loads its path. Nothing is shared between
processes, so N API replicas each load the active version once. Deployments that want
scoring on its own machines run API replicas there and route /api/reward-models/ to them.

The scores are the checkpoint's single logit — exactly what
`AutoModelForSequenceClassification.from_pretrained(<downloaded checkpoint>)` gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from rewards.models import RewardModel, RewardVersion
from rewards.services import MARKER, NoActiveVersion, NotFound


@dataclass(frozen=True)
class Scored:
    version: RewardVersion
    rewards: list[float]


def version_rewards(*, version: RewardVersion, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """Rewards of (prompt, response) pairs from one version's checkpoint, batched (its single
    logit; texts over the version's max length truncated, prompt first). NoActiveVersion
    when the checkpoint is not there."""
    if not (Path(version.artifact_path) / MARKER).is_file():
        raise NoActiveVersion(f"Version {version.number} has no checkpoint to score with.")
    from rewards import ml

    ml.torch_threads(settings.REWARD_TORCH_THREADS)
    loaded = ml.load(version.artifact_path)
    return ml.score(
        loaded,
        [prompt for prompt, _ in pairs],
        [response for _, response in pairs],
        version.typed_hyperparameters.max_length,
    )


def version_id_rewards(version_id: int, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """`version_rewards` by the version's id: the scorer policy runs use (registered with
    llm.rewarders in rewards.apps, so llm's worker scores without importing rewards)."""
    return version_rewards(version=RewardVersion.objects.get(pk=version_id), pairs=pairs)


def preference(reward_a: float, reward_b: float) -> float:
    """P(A preferred) = σ(r_A − r_B), the Bradley–Terry reading of two rewards."""
    return 1.0 / (1.0 + math.exp(reward_b - reward_a))


def reward_model_score(*, reward_model_id: int, pairs: Sequence[tuple[str, str]]) -> Scored:
    """Rewards of (prompt, response) pairs from the active version, batched. NotFound for
    no such reward model, NoActiveVersion when none has passed the gate."""
    reward_model = (
        RewardModel.objects.select_related("active_version").filter(pk=reward_model_id).first()
    )
    if reward_model is None:
        raise NotFound("No such reward model.")
    version = reward_model.active_version
    if version is None or not (Path(version.artifact_path) / MARKER).is_file():
        raise NoActiveVersion("This reward model has no active version yet.")
    return Scored(version, version_rewards(version=version, pairs=pairs))
