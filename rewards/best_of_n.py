"""Best-of-n over-optimisation experiments: start one (checked, nothing started on bad input),
run it on a worker (sample, score, analyse), read it back, export it.

The statistics are rewards/overoptimisation.py's; this module moves rows. Sampling goes
through the policy's `generate_batch` (siblings batched, DESIGN's "two generations at once"
trap), scoring through `version_rewards` (rewards/scoring.py), the one batched scoring path
the API and the automatic judge use too.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotations.models import Item, Queue
from llm.models import ModelConfig
from rewards.models import (
    BestOfNExperiment,
    BestOfNSample,
    BestOfNScore,
    ExperimentStatus,
    GoldKind,
    RewardVersion,
)
from rewards.overoptimisation import MAX_N
from rewards.schemas import AnalysisRecord
from rewards.services import MARKER, RewardError

log = logging.getLogger(__name__)

MAX_PROMPTS = 256
MAX_PROMPT_CHARS = 4000
# Rows in one generate_batch call: 64 siblings of one prompt, or several prompts' fewer.
BATCH_ROWS = 64
SCORE_CHUNK = 512
MAX_CALL_TIMEOUT_S = 3600.0
# A running experiment whose worker wrote nothing for this long is lost (one call's timeout
# at most, plus scoring a chunk).
STALE_AFTER = timedelta(seconds=MAX_CALL_TIMEOUT_S + 600)
RUN_TASK = "rewards.tasks.best_of_n_task"


class ExperimentInvalid(RewardError):
    """Refused before anything starts."""

    status = 422


@dataclass(frozen=True)
class Samples:
    """Scores of one experiment as matrices: [prompt][sample]."""

    proxies: dict[int, list[list[float]]]  # version id → scores
    gold: list[list[float]]


# --- prompt sets ----------------------------------------------------------------------------
def queue_prompts(*, queue: Queue) -> list[str]:
    """The distinct prompts of a comparison queue's items (not gold items), oldest first."""
    kind = queue.item_kind
    if kind.pair_fields is None:
        raise ExperimentInvalid(f"Queue {queue.name} has no prompts: its items compare nothing.")
    seen: dict[str, None] = {}
    for payload in Item.objects.filter(queue=queue, is_gold=False).values_list(
        "payload", flat=True
    ):
        prompt = kind.pair(payload)[1].strip()
        if prompt:
            seen.setdefault(prompt, None)
        if len(seen) >= MAX_PROMPTS:
            break
    return list(seen)


def jsonl_prompts(data: bytes) -> list[str]:
    """Prompts from a JSONL file, one {"prompt": "…"} object a line (blank lines skipped);
    ExperimentInvalid naming the first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ExperimentInvalid("The prompt file is not UTF-8 text.") from None
    prompts: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ExperimentInvalid(f"Line {number}: not JSON.") from None
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise ExperimentInvalid(f'Line {number}: needs a non-empty "prompt" string.')
        if "\x00" in prompt:
            raise ExperimentInvalid(f"Line {number}: the prompt contains a NUL character.")
        prompts.append(prompt.strip())
        if len(prompts) > MAX_PROMPTS:
            raise ExperimentInvalid(f"At most {MAX_PROMPTS} prompts; line {number} is one more.")
    return prompts


def scorable_versions() -> Any:
    """Versions with a checkpoint on disk (what may be a proxy or the gold)."""
    return (
        RewardVersion.objects.exclude(artifact_path="")
        .select_related("reward_model")
        .defer("label_ids")
        .order_by("reward_model__name", "number")
    )


def _has_checkpoint(version: RewardVersion) -> bool:
    return bool(version.artifact_path) and (Path(version.artifact_path) / MARKER).is_file()


# --- start ----------------------------------------------------------------------------------
def best_of_n_start(
    *,
    name: str,
    policy: ModelConfig,
    prompts: Sequence[str],
    prompt_source: str,
    samples_per_prompt: int,
    temperature: float,
    seed: int,
    max_new_tokens: int,
    proxies: Sequence[RewardVersion],
    gold: RewardVersion | None,
    user: Any,
    human_prompts: int | None = None,
) -> BestOfNExperiment:
    """Check everything, then create the experiment and enqueue its run on commit.
    ExperimentInvalid (nothing written) for zero or too many prompts, N outside 2–64, no
    proxy, a gold version that is also a proxy, or a version without a checkpoint.

    The gold is either a version, or people (`human_prompts` given, gold None): blind pairs
    on that many prompts drawn with the seed (rewards/human_gold.py), which needs exactly
    one proxy (the one whose best-of-n picks people judge) and 1 to len(prompts) prompts."""
    prompts = [p.strip() for p in prompts if p.strip()]
    if not prompts:
        raise ExperimentInvalid("The prompt set has no prompts: nothing to sample.")
    if len(prompts) > MAX_PROMPTS:
        raise ExperimentInvalid(f"At most {MAX_PROMPTS} prompts, got {len(prompts)}.")
    if any(len(p) > MAX_PROMPT_CHARS for p in prompts):
        raise ExperimentInvalid(f"A prompt is longer than {MAX_PROMPT_CHARS} characters.")
    if not 2 <= samples_per_prompt <= MAX_N:
        raise ExperimentInvalid(
            f"N (samples per prompt) must be between 2 and {MAX_N}, got {samples_per_prompt}."
        )
    if not proxies:
        raise ExperimentInvalid("Choose at least one proxy reward-model version.")
    if (gold is None) == (human_prompts is None):
        raise ExperimentInvalid("Choose one gold scorer: a reward-model version or human labels.")
    if human_prompts is not None:
        if not 1 <= human_prompts <= len(prompts):
            raise ExperimentInvalid(
                f"Human gold needs a sample of 1 to {len(prompts)} prompts (the prompt set's "
                f"size), got {human_prompts}."
            )
        if len(proxies) != 1:
            raise ExperimentInvalid(
                "Human gold compares one proxy's best-of-n picks: choose exactly one proxy."
            )
    if gold is not None and any(p.pk == gold.pk for p in proxies):
        raise ExperimentInvalid(
            f"The gold scorer ({gold.reward_model.name} v{gold.number}) is also a proxy: "
            "a reward model measured against itself cannot over-optimise."
        )
    for version in [*proxies, *([gold] if gold is not None else [])]:
        if not _has_checkpoint(version):
            raise ExperimentInvalid(
                f"{version.reward_model.name} v{version.number} has no checkpoint to score with."
            )
    with transaction.atomic():
        experiment = BestOfNExperiment.objects.create(
            name=name, policy=policy, prompt_source=prompt_source, prompts=prompts,
            samples_per_prompt=samples_per_prompt, temperature=temperature, seed=seed,
            max_new_tokens=max_new_tokens, gold=gold, created_by=user,
            gold_kind=GoldKind.HUMAN if human_prompts is not None else GoldKind.MODEL,
            human_prompts=human_prompts or 0,
        )  # fmt: skip
        experiment.proxies.set(proxies)
        transaction.on_commit(lambda: _enqueue(experiment.pk))
    return experiment


def _enqueue(experiment_id: int) -> None:
    from celery import current_app

    current_app.tasks[RUN_TASK].delay(experiment_id)


def experiment_stale(experiment: BestOfNExperiment) -> bool:
    """Running, and its worker silent for STALE_AFTER: the worker is gone."""
    beat = experiment.heartbeat_at or experiment.started_at
    return (
        experiment.status == ExperimentStatus.RUNNING
        and beat is not None
        and timezone.now() - beat > STALE_AFTER
    )


def best_of_n_retry(*, experiment_id: int) -> None:
    """A failed experiment, or a running one whose worker is gone, starts again from nothing
    (its samples are dropped); the conditional UPDATE lets one retry through."""
    lost = Q(status=ExperimentStatus.RUNNING) & (
        Q(heartbeat_at__lt=timezone.now() - STALE_AFTER)
        | Q(heartbeat_at__isnull=True, started_at__lt=timezone.now() - STALE_AFTER)
    )
    with transaction.atomic():
        claimed = BestOfNExperiment.objects.filter(
            Q(status=ExperimentStatus.FAILED) | lost, pk=experiment_id
        ).update(status=ExperimentStatus.QUEUED, error="", progress_step=0, analysis=[],
                 started_at=None, finished_at=None)  # fmt: skip
        if not claimed:
            raise ExperimentInvalid(
                "Only a failed experiment, or one whose worker is gone, can be retried."
            )
        BestOfNSample.objects.filter(experiment_id=experiment_id).delete()
        transaction.on_commit(lambda: _enqueue(experiment_id))


# --- run (worker) ---------------------------------------------------------------------------
def best_of_n_run(*, experiment_id: int) -> None:
    """Claim the experiment (a second delivery finds nothing), sample, score, analyse (or,
    for human gold, queue the blind pairs). Any error fails it with the message; nothing is
    half-analysed (the analysis, or the queue, is written last, with the status)."""
    claimed = BestOfNExperiment.objects.filter(
        pk=experiment_id, status=ExperimentStatus.QUEUED
    ).update(status=ExperimentStatus.RUNNING, started_at=timezone.now(), heartbeat_at=None)
    if not claimed:
        return
    experiment = BestOfNExperiment.objects.select_related("policy", "gold__reward_model").get(
        pk=experiment_id
    )
    started = time.monotonic()
    try:
        _sample(experiment)
        _score(experiment)
        records = _analyse(experiment)
        if experiment.human_gold:
            _human_gold_queue(experiment, records, started)
            return
    except Exception as error:
        message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        log.exception("best-of-n experiment %s failed", experiment_id)
        BestOfNExperiment.objects.filter(pk=experiment_id).update(
            status=ExperimentStatus.FAILED, error=str(message)[:2000],
            finished_at=timezone.now(), wall_time_s=time.monotonic() - started,
        )  # fmt: skip
        return
    _done(experiment, records, started)


def _done(experiment: BestOfNExperiment, records: list[AnalysisRecord], started: float) -> None:
    BestOfNExperiment.objects.filter(pk=experiment.pk).update(
        status=ExperimentStatus.DONE, analysis=[r.model_dump(mode="json") for r in records],
        progress_step=experiment.progress_total, finished_at=timezone.now(),
        wall_time_s=time.monotonic() - started,
    )  # fmt: skip


def _human_gold_queue(
    experiment: BestOfNExperiment, records: list[AnalysisRecord], started: float
) -> None:
    """Human gold: the blind pairs' queue and DONE in one commit (a failure leaves neither).
    The analysis holds the proxy curve only: the gold curve is read from the queue's labels
    as they arrive (rewards/human_gold.py human_gold_result)."""
    from rewards.human_gold import human_gold_queue_create

    proxy = experiment.proxies.get()
    with transaction.atomic():
        human_gold_queue_create(experiment=experiment, proxy=experiment_scores(experiment)
                                .proxies[proxy.pk], proxy_version_id=proxy.pk)  # fmt: skip
        _done(experiment, records, started)


def prompt_batches(prompts: int, n: int, rows: int = BATCH_ROWS) -> list[list[int]]:
    """Prompt indices per generate_batch call: as many prompts as fit `rows` rows (≥ 1)."""
    per_call = max(1, rows // n)
    return [list(range(i, min(prompts, i + per_call))) for i in range(0, prompts, per_call)]


def _progress(experiment: BestOfNExperiment, step: int) -> None:
    BestOfNExperiment.objects.filter(pk=experiment.pk).update(
        progress_step=step, heartbeat_at=timezone.now()
    )


def _sample(experiment: BestOfNExperiment) -> None:
    from llm.generation import backend_for, chat_messages

    policy = experiment.policy
    n = experiment.samples_per_prompt
    batches = prompt_batches(len(experiment.prompts), n)
    versions = experiment.proxies.count() + (experiment.gold_id is not None)
    experiment.progress_total = len(batches) + versions
    BestOfNExperiment.objects.filter(pk=experiment.pk).update(
        progress_total=experiment.progress_total
    )
    backend = backend_for(policy)
    for call, indices in enumerate(batches):
        chats = [chat_messages(policy, experiment.prompts[i]) for i in indices for _ in range(n)]
        # A seed per call: the run is reproducible, and calls do not repeat each other. The
        # config's timeout is for one generation; a batched call does its rows' work at
        # about 4 rows per sequential generation's time (DESIGN: 8 rows, ~4x throughput).
        params = policy.generation_params(
            temperature=experiment.temperature, seed=experiment.seed + call,
            max_new_tokens=experiment.max_new_tokens,
            timeout_s=min(MAX_CALL_TIMEOUT_S, policy.timeout_s * max(1.0, len(chats) / 4)),
        )  # fmt: skip
        completions = backend.generate_batch(chats, params=params)
        rows = [
            BestOfNSample(experiment=experiment, prompt_index=i, sample_index=s,
                          text=completions[k * n + s].text,
                          completion_tokens=completions[k * n + s].usage.completion_tokens)
            for k, i in enumerate(indices) for s in range(n)
        ]  # fmt: skip
        BestOfNSample.objects.bulk_create(rows)
        _progress(experiment, call + 1)


def _score(experiment: BestOfNExperiment) -> None:
    from rewards.scoring import version_rewards

    samples = list(
        BestOfNSample.objects.filter(experiment=experiment).values_list(
            "pk", "prompt_index", "text"
        )
    )
    pairs = [(experiment.prompts[i], text) for _, i, text in samples]
    versions = [*experiment.proxies.all(), *([experiment.gold] if experiment.gold else [])]
    for done, version in enumerate(versions, start=1):
        for start in range(0, len(pairs), SCORE_CHUNK):
            chunk = pairs[start : start + SCORE_CHUNK]
            rewards = version_rewards(version=version, pairs=chunk)
            BestOfNScore.objects.bulk_create(
                BestOfNScore(sample_id=pk, version=version, score=score)
                for (pk, _, _), score in zip(samples[start : start + SCORE_CHUNK], rewards,
                                             strict=True)
            )  # fmt: skip
        _progress(experiment, experiment.progress_total - len(versions) + done)


def experiment_scores(experiment: BestOfNExperiment) -> Samples:
    """The stored scores as [prompt][sample] matrices, per proxy and for the gold."""
    n = experiment.samples_per_prompt
    prompts = len(experiment.prompts)
    by_version: dict[int, list[list[float]]] = defaultdict(
        lambda: [[0.0] * n for _ in range(prompts)]
    )
    rows = BestOfNScore.objects.filter(sample__experiment=experiment).values_list(
        "version_id", "sample__prompt_index", "sample__sample_index", "score"
    )
    for version_id, prompt_index, sample_index, score in rows.iterator(chunk_size=5000):
        by_version[version_id][prompt_index][sample_index] = score
    gold = by_version.pop(experiment.gold_id) if experiment.gold_id is not None else []
    return Samples(proxies=dict(by_version), gold=gold)


def _analyse(experiment: BestOfNExperiment) -> list[AnalysisRecord]:
    from rewards.overoptimisation import analyse

    scores = experiment_scores(experiment)
    records = []
    for version in experiment.proxies.select_related("reward_model").order_by("label_count"):
        gold = None if experiment.human_gold else scores.gold
        analysis = analyse(scores.proxies[version.pk], gold, seed=experiment.seed)
        records.append(
            AnalysisRecord(
                proxy_version_id=version.pk,
                proxy_name=f"{version.reward_model.name} v{version.number}",
                proxy_labels=version.label_count,
                analysis=analysis,
            )
        )
    return records


# --- reads ----------------------------------------------------------------------------------
def experiment_analysis(experiment: BestOfNExperiment) -> list[AnalysisRecord]:
    return [AnalysisRecord.model_validate(row) for row in experiment.analysis]


EXPORT_HEADER = ["prompt_index", "sample_index", "prompt", "completion", "completion_tokens",
                 "version_id", "version", "role", "score"]  # fmt: skip


def experiment_export_rows(experiment: BestOfNExperiment) -> Iterator[list[Any]]:
    """One row per (sample, scoring version), header first: the samples and every score."""
    yield EXPORT_HEADER
    names = {
        v.pk: f"{v.reward_model.name} v{v.number}"
        for v in RewardVersion.objects.filter(
            pk__in=[
                *([experiment.gold_id] if experiment.gold_id else []),
                *experiment.proxies.values_list("pk", flat=True),
            ]
        ).select_related("reward_model")
    }
    rows = (
        BestOfNScore.objects.filter(sample__experiment=experiment)
        .order_by("sample__prompt_index", "sample__sample_index", "version_id")
        .values_list("sample__prompt_index", "sample__sample_index", "sample__text",
                     "sample__completion_tokens", "version_id", "score")
    )  # fmt: skip
    for prompt_index, sample_index, text, tokens, version_id, score in rows.iterator(
        chunk_size=2000
    ):
        role = "gold" if version_id == experiment.gold_id else "proxy"
        yield [prompt_index, sample_index, experiment.prompts[prompt_index], text, tokens,
               version_id, names.get(version_id, ""), role, score]  # fmt: skip
