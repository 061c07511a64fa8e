"""The reward-model API (mounted by config/api.py at /api/reward-models/): list, read,
score (for policy training), download the active checkpoint, retrain.

Researchers and admins only, like the pages; the same selectors and services run behind both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import FileResponse, HttpRequest
from ninja import Router, Schema, Status
from ninja.errors import HttpError
from pydantic import Field

from annotations.kinds import MAX_TEXT_CHARS
from annotations.models import Queue
from config.api_contract import Body, Id, api_user, errors, researchers
from core.stats import METHOD, Share
from core.text import StoredText
from llm.api import TrainingRunOut
from llm.schemas import RS_MAX_N, RS_MIN_N
from llm.selectors import model_configs, training_runs
from rewards.models import RewardModel, RewardVersion, Speed
from rewards.policy import PolicySettings, policy_run_start
from rewards.selectors import (
    best_of_n_experiments,
    human_gold_for,
    reward_model_versions,
    reward_models,
)
from rewards.services import (
    NoActiveVersion,
    RewardError,
    checkpoint_archive,
    reward_model_readiness,
    reward_retrain_now,
)

MAX_BATCH = 256

reward_models_router = Router(tags=["reward models"], auth=researchers)


class AccuracyOut(Schema):
    """k right of n held-out pairs, with its 95 % interval and the interval's method."""

    k: int
    n: int
    value: float
    low: float
    high: float
    method: str

    @staticmethod
    def of(accuracy: Share | None) -> AccuracyOut | None:
        if accuracy is None or accuracy.interval is None or accuracy.value is None:
            return None
        low, high = accuracy.interval
        return AccuracyOut(k=accuracy.k, n=accuracy.n, value=accuracy.value, low=low,
                           high=high, method=METHOD)  # fmt: skip


class ReadinessOut(Schema):
    """Whether the labels are enough to train and evaluate a version; if not, how many more
    (one a/b label on a new item counted as one pair)."""

    ready: bool
    labels_needed: int
    train_pairs: int
    heldout_pairs: int
    min_train_pairs: int
    min_heldout_pairs: int


class VersionOut(Schema):
    number: int
    speed: str
    trigger: str
    status: str
    reason: str
    label_count: int
    label_hash: str
    heldout_accuracy: float | None
    heldout_pairs: int
    heldout: AccuracyOut | None
    baseline_accuracy: float | None
    baseline: AccuracyOut | None
    wall_time_s: float | None
    created_at: datetime
    finished_at: datetime | None

    @staticmethod
    def of(version: RewardVersion) -> VersionOut:
        metrics = version.typed_metrics
        return VersionOut(
            number=version.number, speed=version.speed, trigger=version.trigger,
            status=version.status, reason=version.reason, label_count=version.label_count,
            label_hash=version.label_hash, heldout_accuracy=metrics.heldout_accuracy,
            heldout_pairs=metrics.heldout_pairs, heldout=AccuracyOut.of(version.heldout),
            baseline_accuracy=metrics.baseline_accuracy,
            baseline=AccuracyOut.of(version.baseline),
            wall_time_s=version.wall_time_s, created_at=version.created_at,
            finished_at=version.finished_at,
        )  # fmt: skip


class RewardModelOut(Schema):
    id: int
    name: str
    queue_ids: list[int]
    active_version: int | None
    readiness: ReadinessOut


class RewardModelDetail(RewardModelOut):
    versions: list[VersionOut]


def _out(reward_model: RewardModel) -> dict[str, Any]:
    ready = reward_model_readiness(reward_model=reward_model)
    return {
        "id": reward_model.pk,
        "name": reward_model.name,
        "queue_ids": [queue.pk for queue in reward_model.queues.all()],
        "active_version": (
            reward_model.active_version.number if reward_model.active_version else None
        ),
        "readiness": {"ready": ready.ready, **ready.model_dump(
            include={"labels_needed", "train_pairs", "heldout_pairs", "min_train_pairs",
                     "min_heldout_pairs"})},
    }  # fmt: skip


def _reward_model(request: HttpRequest, reward_model_id: int) -> RewardModel:
    reward_model = reward_models().filter(pk=reward_model_id).first()
    if reward_model is None:
        raise HttpError(404, "No such reward model.")
    return reward_model


class ScoreItem(Body):
    prompt: StoredText = Field(max_length=MAX_TEXT_CHARS)
    response: StoredText = Field(max_length=MAX_TEXT_CHARS)


class ScoreIn(Body):
    items: list[ScoreItem] = Field(min_length=1, max_length=MAX_BATCH)


class ScoreOut(Schema):
    reward_model: int
    version: int
    rewards: list[float]


class RetrainIn(Body):
    speed: Speed = Speed.FULL


@reward_models_router.get("/", response={200: list[RewardModelOut]} | errors(403))
def list_reward_models(request: HttpRequest) -> list[dict[str, Any]]:
    return [_out(rm) for rm in reward_models()]


@reward_models_router.get(
    "/{reward_model_id}", response={200: RewardModelDetail} | errors(403, 404)
)
def get_reward_model(request: HttpRequest, reward_model_id: Id) -> dict[str, Any]:
    reward_model = _reward_model(request, reward_model_id)
    versions = [VersionOut.of(v) for v in reward_model_versions(reward_model)]
    return {**_out(reward_model), "versions": versions}


@reward_models_router.post(
    "/{reward_model_id}/score",
    response={200: ScoreOut} | errors(403, 404, 409),
)
def score(request: HttpRequest, reward_model_id: Id, body: ScoreIn) -> ScoreOut:
    """Rewards for a batch of (prompt, response) pairs from the active version: its
    checkpoint's single logit, the same as the downloaded checkpoint gives. At most 256
    pairs a call; 409 while no version has passed the evaluation gate."""
    _reward_model(request, reward_model_id)
    from rewards.scoring import reward_model_score

    try:
        scored = reward_model_score(
            reward_model_id=reward_model_id,
            pairs=[(item.prompt, item.response) for item in body.items],
        )
    except NoActiveVersion as error:
        raise HttpError(409, error.message) from None
    return ScoreOut(
        reward_model=reward_model_id, version=scored.version.number, rewards=scored.rewards
    )


_FILE = {"schema": {"type": "string", "format": "binary"}}


@reward_models_router.get(
    "/{reward_model_id}/checkpoint",
    response=errors(403, 404, 409),
    openapi_extra={
        "responses": {
            200: {
                "description": "The active version's checkpoint (a zip)",
                "content": {"application/zip": _FILE},
            }
        }
    },
)
def checkpoint(request: HttpRequest, reward_model_id: Id) -> FileResponse:
    """The active version's checkpoint as a zip: one folder that
    `AutoModelForSequenceClassification.from_pretrained` loads (one label; read logits)."""
    reward_model = _reward_model(request, reward_model_id)
    version = reward_model.active_version
    if version is None:
        raise HttpError(409, "This reward model has no active version yet.")
    try:
        path = checkpoint_archive(version=version)
    except RewardError as error:
        raise HttpError(409, error.message) from None
    name = f"reward-model-{reward_model.pk}-v{version.number}.zip"
    return FileResponse(path.open("rb"), as_attachment=True, filename=name,
                        content_type="application/zip")  # fmt: skip


@reward_models_router.post(
    "/{reward_model_id}/retrain",
    response={202: VersionOut} | errors(403, 404, 409),
)
def retrain(request: HttpRequest, reward_model_id: Id, body: RetrainIn) -> Status:
    """Retrain now: queue a fast or full run; 409 if one is already queued or running, or
    while the labels are not enough (the reward model's `readiness` says how many more)."""
    reward_model = _reward_model(request, reward_model_id)
    try:
        version = reward_retrain_now(
            reward_model=reward_model, user=api_user(request), speed=body.speed
        )
    except RewardError as error:
        raise HttpError(error.status, error.message) from None
    return Status(202, VersionOut.of(version))


# --- policy training runs (mounted at /api/policy-runs/) ------------------------------------
policy_runs_router = Router(tags=["training runs"], auth=researchers)


class PolicyRunIn(Body):
    """A policy training run from a rating queue: `dpo` on its preference pairs (items
    labelled A or B, majority vote an item) or `rejection-sampling` (best of `n` samples of
    each of its prompts from the parent under `reward_model`'s active version, then SFT).
    `reward_model` is required for rejection sampling; for DPO it gives the report's proxy
    reward. `gold_model` (optional, another reward model) scores the report's samples as the
    gold. Defaults: learning rate 5e-6 (DPO) or 5e-5, batch 4 (DPO) or 8."""

    kind: Literal["dpo", "rejection-sampling"]
    parent_config: Id
    name: StoredText = Field(min_length=1, max_length=100)
    queue: Id
    reward_model: Id | None = None
    gold_model: Id | None = None
    n: int = Field(default=4, ge=RS_MIN_N, le=RS_MAX_N)
    beta: float = Field(default=0.1, gt=0, le=10)
    learning_rate: float | None = Field(default=None, gt=0, le=1e-2)
    max_steps: int = Field(default=0, ge=0, le=100_000)
    batch_size: int | None = Field(default=None, ge=1, le=128)
    max_length: int = Field(default=256, ge=16, le=4096)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


@policy_runs_router.post("/", response={202: TrainingRunOut} | errors(403, 404))
def start_policy_run(request: HttpRequest, body: PolicyRunIn) -> Status:
    """Queue a DPO or rejection-sampling run; once done its `result_config` is a new model
    config with lineage, and `report` holds KL from the parent and the proxy reward (and the
    gold's, where `gold_model` is given). 404 for a parent config, queue or reward model that
    does not exist; 400 for a parent that is not a local transformers model, a queue with no
    preference pairs (DPO) or prompts, or fewer than the server's minimum
    (LLM_TRAINING_MIN_ROWS), rejection sampling without a reward model with an active
    version, a gold reward model that is the proxy or has no active version, or a name
    already taken."""
    parent = model_configs().filter(pk=body.parent_config).first()
    if parent is None:
        raise HttpError(404, "No such model config.")
    queue = Queue.objects.filter(pk=body.queue).first()
    if queue is None:
        raise HttpError(404, "No such queue.")
    reward_model = None
    if body.reward_model is not None:
        reward_model = reward_models().filter(pk=body.reward_model).first()
        if reward_model is None:
            raise HttpError(404, "No such reward model.")
    gold_model = None
    if body.gold_model is not None:
        gold_model = reward_models().filter(pk=body.gold_model).first()
        if gold_model is None:
            raise HttpError(404, "No such gold reward model.")
    run = policy_run_start(
        kind=body.kind, parent=parent, name=body.name, queue=queue, reward_model=reward_model,
        gold_model=gold_model,
        settings=PolicySettings(beta=body.beta, n=body.n, learning_rate=body.learning_rate,
                                max_steps=body.max_steps, batch_size=body.batch_size,
                                max_length=body.max_length, seed=body.seed),
        user=api_user(request),
    )  # fmt: skip
    return Status(202, TrainingRunOut.of(training_runs().get(pk=run.pk)))


# --- best-of-n over-optimisation experiments (mounted at /api/best-of-n/) -------------------
best_of_n_router = Router(tags=["over-optimisation"], auth=researchers)


class HumanPointOut(Schema):
    """Best-of-n's wins over best-of-1 at one n; `value`, `low`, `high` are null at n = 0."""

    n: int
    sqrt_kl: float
    wins: int
    decisive: int
    value: float | None
    low: float | None
    high: float | None
    ties: int
    both_bad: int


class IntervalOut(Schema):
    value: float
    low: float
    high: float


class HumanFitOut(Schema):
    """win rate − 0.5 = d(α − β·d); intervals: bootstrap over the sampled prompts."""

    alpha: IntervalOut
    beta: IntervalOut
    peak_sqrt_kl: IntervalOut | None
    peak_n: float | None
    resamples: int


class HumanGoldOut(Schema):
    """The human gold curve from the queue's labels so far (rewards/human_gold.py)."""

    queue: int
    pairs: int
    identical_not_asked: int
    labels: int
    prompts_labelled: int
    points: list[HumanPointOut]
    fit: HumanFitOut | None
    method: str


class BestOfNOut(Schema):
    id: int
    name: str
    status: str
    samples_per_prompt: int
    prompts: int
    gold_kind: Literal["model", "human"]
    gold_version: int | None
    human_prompts: int
    human_gold: HumanGoldOut | None


@best_of_n_router.get("/{experiment_id}", response={200: BestOfNOut} | errors(403, 404))
def get_best_of_n(request: HttpRequest, experiment_id: Id) -> BestOfNOut:
    """An over-optimisation experiment; with human gold, its curve from the labels so far
    (null until the worker has queued the pairs), read by the selector the page reads."""
    experiment = best_of_n_experiments().defer(None).filter(pk=experiment_id).first()
    if experiment is None:
        raise HttpError(404, "No such experiment.")
    view = human_gold_for(experiment)
    human = None
    if view is not None:
        curve = view.curve
        fit = curve.fit
        human = HumanGoldOut(
            queue=view.record.queue_id, pairs=len(view.record.typed_pairs.items),
            identical_not_asked=view.record.typed_pairs.identical, labels=curve.labels,
            prompts_labelled=curve.prompts,
            points=[HumanPointOut(n=p.n, sqrt_kl=p.d, wins=p.wins.k, decisive=p.wins.n,
                                  value=p.wins.value, low=p.wins.low, high=p.wins.high,
                                  ties=p.ties, both_bad=p.both_bad) for p in curve.points],
            fit=HumanFitOut(
                alpha=IntervalOut(**vars(fit.alpha)), beta=IntervalOut(**vars(fit.beta)),
                peak_sqrt_kl=IntervalOut(**vars(fit.peak_d)) if fit.peak_d else None,
                peak_n=fit.peak_n, resamples=fit.resamples,
            ) if fit else None,
            method=curve.method,
        )  # fmt: skip
    return BestOfNOut(
        id=experiment.pk, name=experiment.name, status=experiment.status,
        samples_per_prompt=experiment.samples_per_prompt, prompts=len(experiment.prompts),
        gold_kind=experiment.gold_kind, gold_version=experiment.gold_id,  # type: ignore[arg-type]
        human_prompts=experiment.human_prompts, human_gold=human,
    )  # fmt: skip
