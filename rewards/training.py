"""A training run from claim to verdict, and scoring items with the active version.

Run by the worker only (rewards/tasks.py): it imports torch through rewards/ml.py.

  claim (QUEUED → TRAINING, conditional UPDATE) → read every label of the reward model's
  queues as pairs, split (new groups' sides stored) → too few to train or to evaluate (only
  if labels went away since the readiness check that started it): REJECTED → train (fast:
  cached features + a new head; full: fine-tune) with progress and lease renewal each step →
  EVALUATING: write the checkpoint (temp dir, checked, renamed) → score the held-out pairs
  with it and with the active version → the gate → ACTIVE (the old one RETIRED) or REJECTED.
  Any error: FAILED with the error, the checkpoint removed; the active version untouched.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from safetensors import safe_open

from annotations.kinds import item_kind
from annotations.models import Item, Priority
from annotations.services import item_scores_set
from core.stats import Share
from llm.backends.transformers_backend import compute_dtype
from rewards import ml
from rewards.data import Pair, TrainingData, training_data
from rewards.models import Embedding, RewardModel, RewardVersion, Speed, Status
from rewards.schemas import CalibrationBin, Metrics
from rewards.services import (
    artifacts_dir,
    file_sha256,
    reward_model_readiness_forget,
    split_groups_store,
    version_announce,
    version_finish,
    version_heartbeat,
    version_progress,
    version_promote,
)

PROGRESS_EVERY_S = 0.5
CALIBRATION_BINS = 10


class RunLost(Exception):
    """The run's lease was reaped: another worker owns the retry; stop writing."""


def embedding_key(base: str, max_length: int, prompt: str, response: str) -> str:
    text = f"{base}\x1f{max_length}\x1f{prompt}\x1f{response}"
    return hashlib.sha256(text.encode()).hexdigest()


def cached_features(
    base: str,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_length: int,
    heartbeat: ml.Heartbeat = None,
) -> tuple[torch.Tensor, int]:
    """Frozen-encoder features per (prompt, response); each text is embedded once, ever
    (the Embedding table), so a fast run embeds only texts it has not seen. Returns the
    features and how many texts were embedded now."""
    keys = [embedding_key(base, max_length, p, r) for p, r in zip(prompts, responses, strict=True)]
    found: dict[str, bytes | memoryview] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        found.update(Embedding.objects.filter(key__in=chunk).values_list("key", "vector"))
    missing = [i for i, key in enumerate(keys) if key not in found]
    missing = list({keys[i]: i for i in missing}.values())
    if missing:
        loaded = ml.load(ml.base_path(base))
        vectors = ml.features(
            loaded,
            [prompts[i] for i in missing],
            [responses[i] for i in missing],
            max_length,
            heartbeat,
        )
        rows = []
        for i, vector in zip(missing, vectors, strict=True):
            data = vector.numpy().astype(np.float32).tobytes()
            found[keys[i]] = data
            rows.append(Embedding(key=keys[i], vector=data))
        Embedding.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    matrix = np.stack([np.frombuffer(bytes(found[key]), dtype=np.float32) for key in keys])
    return torch.from_numpy(matrix.copy()), len(missing)


@dataclass
class _Scorer:
    """Rewards of one version: cached features and its head when it is a fast version of the
    same base (no encoder pass), else its checkpoint run on the texts."""

    path: Path
    base: str
    speed: str
    max_length: int
    heartbeat: ml.Heartbeat = None

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        if not prompts:
            return np.zeros(0)
        if self.speed == Speed.FAST:
            with safe_open(str(self.path / "model.safetensors"), framework="pt") as weights:
                w = weights.get_tensor("classifier.weight").float()
                b = weights.get_tensor("classifier.bias").float()
            feats, _ = cached_features(
                self.base, prompts, responses, self.max_length, self.heartbeat
            )
            return (feats @ w.T + b)[:, 0].numpy()
        loaded = ml.load(str(self.path))
        return np.array(ml.score(loaded, prompts, responses, self.max_length, self.heartbeat))


def version_scorer(version: RewardVersion, heartbeat: ml.Heartbeat = None) -> _Scorer:
    return _Scorer(
        Path(version.artifact_path),
        version.reward_model.base_checkpoint,
        version.speed,
        version.typed_hyperparameters.max_length,
        heartbeat,
    )


def pair_probabilities(scorer: _Scorer, pairs: Sequence[Pair]) -> np.ndarray:
    """P(chosen) = σ(r_chosen − r_rejected) per pair."""
    prompts = [p.prompt for p in pairs]
    rewards = scorer(prompts + prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs])
    margin = rewards[: len(pairs)] - rewards[len(pairs) :]
    return 1.0 / (1.0 + np.exp(-margin))


def calibration(p_chosen: np.ndarray) -> tuple[list[CalibrationBin], float]:
    """Reliability of P(chosen): each pair counted both ways round — (p, chosen) and
    (1 − p, not chosen) — so the plot spans 0–1; returns the bins and the ECE."""
    predicted = np.concatenate([p_chosen, 1 - p_chosen])
    observed = np.concatenate([np.ones_like(p_chosen), np.zeros_like(p_chosen)])
    bins = []
    ece = 0.0
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (predicted >= lo) & ((predicted < hi) if hi < 1 else (predicted <= hi))
        count = int(inside.sum())
        if not count:
            continue
        mean_p, freq = float(predicted[inside].mean()), float(observed[inside].mean())
        bins.append(CalibrationBin(predicted=round(mean_p, 4), observed=round(freq, 4),
                                   count=count))  # fmt: skip
        ece += count / len(predicted) * abs(mean_p - freq)
    return bins, round(ece, 4)


def length_bias(pairs: Sequence[Pair], p_chosen: np.ndarray) -> dict[str, float | int | None]:
    """Does the version share the raters' length bias? On held-out pairs whose responses
    differ in length: of the pairs it gets wrong, how many it gets wrong by preferring the
    longer (the raters' figure on the queue dashboard, annotations/rater_errors.py), and
    Spearman's rho of its score difference (longer − shorter) against the log length ratio.
    (Position it cannot share: it scores each response alone, never seeing its side.)"""
    from scipy.stats import spearmanr

    wrong = wrong_longer = 0
    margins, ratios = [], []
    for pair, p in zip(pairs, p_chosen, strict=True):
        chosen, rejected = len(pair.chosen), len(pair.rejected)
        if chosen == rejected:
            continue
        margin = float(np.log(p / (1 - p))) if 0 < p < 1 else (50.0 if p >= 1 else -50.0)
        longer_is_chosen = chosen > rejected
        margins.append(margin if longer_is_chosen else -margin)
        ratios.append(abs(np.log((chosen + 1) / (rejected + 1))))
        if p < 0.5:
            wrong += 1
            wrong_longer += not longer_is_chosen
    rho = p_value = None
    if len(margins) >= 3 and len(set(margins)) > 1 and len(set(ratios)) > 1:
        result = spearmanr(ratios, margins)
        rho, p_value = round(float(result.statistic), 4), round(float(result.pvalue), 4)
    return {"length_wrong_pairs": wrong, "length_wrong_longer": wrong_longer,
            "length_rho": rho, "length_rho_p": p_value}  # fmt: skip


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided exact sign test on the discordant pairs: P(losses ≥ observed | no
    difference). Small means the candidate is really worse."""
    n = wins + losses
    if n == 0:
        return 1.0
    return float(sum(math.comb(n, k) for k in range(losses, n + 1)) / 2**n)


def gate(
    candidate: np.ndarray, baseline: np.ndarray | None, margin: float
) -> tuple[bool, str, dict[str, float | int | None]]:
    """The evaluation gate on per-pair correctness (P(chosen) > 0.5) over the held-out pairs.

    A first version (nothing active) goes live only if it beats chance: the lower bound of
    its accuracy's Wilson 95 % interval is above 50 %. A later one is compared, paired, with
    the active version on the very same pairs: it goes live if its accuracy is at least the
    baseline's minus `margin` (the exact sign test on the pairs where they differ is kept
    beside it). Returns (promote, reason, metrics)."""
    Fields = dict[str, float | int | None]
    right = candidate > 0.5
    n = len(right)
    own = Share(int(right.sum()), n)
    accuracy = float(right.mean()) if n else 0.0
    if baseline is None:
        first: Fields = {"heldout_accuracy": accuracy, "heldout_correct": own.k}
        if own.beats_chance:
            return True, "", first
        reason = (
            f"Not better than chance on its {n} held-out pairs: {own.text}. A first version "
            "goes live only when the interval's lower bound is above 50 %; more labels narrow it."
        )
        return False, reason, first
    base_right = baseline > 0.5
    base = Share(int(base_right.sum()), n)
    base_accuracy = float(base_right.mean()) if n else 0.0
    wins = int((right & ~base_right).sum())
    losses = int((~right & base_right).sum())
    fields: Fields = {
        "heldout_accuracy": accuracy,
        "heldout_correct": own.k,
        "baseline_accuracy": base_accuracy,
        "baseline_correct": base.k,
        "wins": wins,
        "losses": losses,
        "p_value": round(sign_test_p(wins, losses), 5),
    }
    if accuracy + margin + 1e-12 >= base_accuracy:
        return True, "", fields
    reason = (
        f"Less accurate than the active version on the same {n} held-out pairs: "
        f"{own.text} against {base.text} (right where it was wrong on {wins}, "
        f"wrong where it was right on {losses}; margin {100 * margin:.0f} points)."
    )
    return False, reason, fields


HEARTBEAT_EVERY_S = 5.0


class _Progress:
    def __init__(self, version: RewardVersion) -> None:
        self.version = version
        self.last = 0.0
        self.last_beat = time.monotonic()

    def beat(self) -> None:
        """Renew the lease during long passes without training steps (embedding, scoring)."""
        now = time.monotonic()
        if now - self.last_beat < HEARTBEAT_EVERY_S:
            return
        self.last_beat = now
        if not version_heartbeat(version_id=self.version.pk):
            raise RunLost()

    def __call__(self, step: int, total: int, loss: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and step < total and now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        if not version_progress(
            version=self.version, step=step, total=total, loss=loss, status=Status.TRAINING
        ):
            raise RunLost()


def reward_training_run(*, version_id: int) -> None:
    """Run one queued version to its verdict. Claimed with a conditional UPDATE, so a second
    delivery of the task finds nothing to claim and returns."""
    now = timezone.now()
    claimed = RewardVersion.objects.filter(pk=version_id, status=Status.QUEUED).update(
        status=Status.TRAINING,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=settings.REWARD_LEASE_SECONDS),
    )
    if not claimed:
        return
    ml.torch_threads(settings.REWARD_TORCH_THREADS)
    version = RewardVersion.objects.select_related("reward_model").get(pk=version_id)
    started = time.monotonic()
    try:
        _run(version, started)
    except RunLost:
        return
    except Exception as error:
        version_finish(version_id=version_id, status=Status.FAILED,
                       reason=f"{type(error).__name__}: {error}"[:2000],
                       wall_time_s=time.monotonic() - started)  # fmt: skip
        from rewards.services import artifact_remove

        artifact_remove(version.artifact_path)
        raise


def _run(version: RewardVersion, started: float) -> None:
    reward_model = version.reward_model
    hp = version.typed_hyperparameters
    data = training_data(reward_model=reward_model)
    RewardVersion.objects.filter(pk=version.pk).update(
        label_ids=data.label_ids, label_count=len(data.label_ids),
        label_hash=data.label_hash, label_watermark=data.watermark,
    )  # fmt: skip
    metrics = Metrics(train_pairs=len(data.train), heldout_pairs=len(data.heldout),
                      train_ai_pairs=data.ai_train_pairs)  # fmt: skip
    # Runs start only once the labels are enough (reward_models_check, Retrain now); fewer
    # here means labels went away meanwhile.
    if len(data.train) < settings.REWARD_MIN_TRAIN_PAIRS:
        _too_few(version, metrics, started, f"Not enough labels to train: {len(data.train)} "
                 f"training pairs, {settings.REWARD_MIN_TRAIN_PAIRS} needed.")  # fmt: skip
        return
    if len(data.heldout) < settings.REWARD_MIN_HELDOUT_PAIRS:
        _too_few(version, metrics, started, f"Not enough labels to evaluate: "
                 f"{len(data.heldout)} held-out pairs, {settings.REWARD_MIN_HELDOUT_PAIRS} "
                 "needed.")  # fmt: skip
        return
    # From here the run trains on its training pairs: their sides are fixed for good.
    split_groups_store(reward_model_id=reward_model.pk, sides=data.new_sides)
    progress = _Progress(version)
    progress(0, 1, float("nan"), force=True)
    base = reward_model.base_checkpoint
    path = artifacts_dir() / str(reward_model.pk) / f"v{version.number}-{secrets.token_hex(4)}"
    prompts = [p.prompt for p in data.train]
    chosen = [p.chosen for p in data.train]
    rejected = [p.rejected for p in data.train]
    # Uniform weights are the plain mean: pass none, so human-only runs are unchanged.
    weights = [p.weight for p in data.train] if any(p.weight != 1 for p in data.train) else None
    if version.speed == Speed.FAST:
        feats, embedded = cached_features(
            base, prompts + prompts, chosen + rejected, hp.max_length, progress.beat
        )
        metrics.embedded_texts = embedded
        n = len(prompts)
        weight, bias, curve = ml.fast_train(
            feats[:n], feats[n:], hp, progress,
            weights=None if weights is None else torch.tensor(weights),
        )  # fmt: skip
        loaded = ml.load(ml.base_path(base))
        trained = ml.Loaded(loaded.tokenizer, _with_head(loaded.model, weight, bias), loaded.lock)
    else:
        trained = ml.load(ml.base_path(base), cached=False)
        curve = ml.full_train(trained, prompts, chosen, rejected, hp, progress,
                              compute=compute_dtype(settings.LLM_DTYPE),
                              weights=weights)  # fmt: skip
    metrics.loss_curve = curve
    metrics.truncated_sequences = ml.count_truncated(
        trained.tokenizer, prompts + prompts, chosen + rejected, hp.max_length
    )
    if not version_progress(version=version, step=len(curve) and curve[-1][0],
                            total=len(curve) and curve[-1][0], loss=curve[-1][1] if curve else None,
                            status=Status.EVALUATING):  # fmt: skip
        raise RunLost()
    info = {"reward_model": reward_model.pk, "version": version.number, "speed": version.speed,
            "base": base, "max_length": hp.max_length, "label_hash": data.label_hash}  # fmt: skip
    ml.save(trained, path, info)
    RewardVersion.objects.filter(pk=version.pk).update(
        artifact_path=str(path), artifact_sha256=file_sha256(path / "model.safetensors")
    )
    version.artifact_path = str(path)
    _evaluate(version, data, metrics, started, progress.beat)


def _with_head(model: torch.nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> torch.nn.Module:
    import copy

    # A copy (~0.1 s for MiniLM): the cached base stays the frozen encoder for features.
    trained = copy.deepcopy(model)
    with torch.no_grad():
        trained.classifier.weight.copy_(weight)  # type: ignore[union-attr,operator]
        trained.classifier.bias.copy_(bias)  # type: ignore[union-attr,operator]
    return trained


def _evaluate(
    version: RewardVersion,
    data: TrainingData,
    metrics: Metrics,
    started: float,
    heartbeat: ml.Heartbeat,
) -> None:
    reward_model = RewardModel.objects.select_related("active_version").get(
        pk=version.reward_model_id
    )
    ml.artifact_check(Path(version.artifact_path))
    candidate = pair_probabilities(version_scorer(version, heartbeat), data.heldout)
    baseline_version = reward_model.active_version
    baseline = None
    if baseline_version is not None:
        baseline_version.reward_model = reward_model
        baseline = pair_probabilities(version_scorer(baseline_version, heartbeat), data.heldout)
        metrics.baseline_version = baseline_version.number
    promote, reason, fields = gate(candidate, baseline, reward_model.margin)
    for name, value in fields.items():
        setattr(metrics, name, value)
    metrics.calibration, metrics.ece = calibration(candidate)
    if data.gold:
        on_gold = pair_probabilities(version_scorer(version, heartbeat), data.gold)
        metrics.gold_pairs, metrics.gold_correct = len(data.gold), int((on_gold > 0.5).sum())
    for name, value in length_bias(data.heldout, candidate).items():
        setattr(metrics, name, value)
    result = {"metrics": metrics.model_dump(mode="json"),
              "wall_time_s": round(time.monotonic() - started, 3), "finished_at": timezone.now(),
              "lease_expires_at": None}  # fmt: skip
    if promote:
        promoted, reason = version_promote(
            version_id=version.pk,
            baseline_id=baseline_version.pk if baseline_version else None,
            fields=result,
        )
        if promoted or reason != "lost":
            _notify(version.pk)
        return
    if version_finish(version_id=version.pk, status=Status.REJECTED, reason=reason, **result):
        _notify(version.pk)


def _too_few(version: RewardVersion, metrics: Metrics, started: float, reason: str) -> None:
    reward_model_readiness_forget(reward_model_id=version.reward_model_id)
    version_finish(version_id=version.pk, status=Status.REJECTED, reason=reason,
                   metrics=metrics.model_dump(mode="json"),
                   wall_time_s=time.monotonic() - started)  # fmt: skip
    _notify(version.pk)


def _notify(version_id: int) -> None:

    version = RewardVersion.objects.get(pk=version_id)
    version_announce(version.reward_model_id, version)


# --- using the active version -------------------------------------------------------------
def reward_scores_refresh(*, reward_model_id: int, only_missing: bool = False) -> int:
    """Score the open comparison items of the reward model's uncertainty-ordered queues with
    the active version, and write each item's uncertainty — 1 − |2·P(A) − 1|, so pairs
    nearest 50 % come first — through annotations' item_scores_set. Returns items scored.
    `only_missing`: just the items not scored yet (new since the version went live)."""
    reward_model = RewardModel.objects.select_related("active_version").get(pk=reward_model_id)
    version = reward_model.active_version
    if version is None:
        return 0
    version.reward_model = reward_model
    ml.torch_threads(settings.REWARD_TORCH_THREADS)
    scorer = version_scorer(version)
    written = 0
    for queue in reward_model.queues.filter(priority=Priority.UNCERTAINTY):
        kind = item_kind(queue.kind)
        if kind.pair_fields is None:
            continue
        items_qs = Item.objects.filter(queue=queue, complete=False)
        if only_missing:
            items_qs = items_qs.filter(uncertainty__isnull=True)
        items = list(items_qs.only("pk", "payload"))
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            texts = [kind.pair(item.payload) for item in chunk]
            prompts = [f"{s}\n\n{p}" if s else p for s, p, _, _ in texts]
            rewards = scorer(prompts + prompts, [t[2] for t in texts] + [t[3] for t in texts])
            p_a = 1.0 / (1.0 + np.exp(-(rewards[: len(chunk)] - rewards[len(chunk) :])))
            scores = {
                item.pk: float(1 - abs(2 * p - 1)) for item, p in zip(chunk, p_a, strict=True)
            }
            with transaction.atomic():
                written += item_scores_set(scores=scores)
    return written
