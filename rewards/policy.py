"""Policy training from Arbiter's data: start a DPO run on a queue's preference pairs, or a
rejection-sampling run on a queue's prompts ranked by a reward model's active version.

The training itself is llm's (llm.services.dpo_run_start / rejection_sampling_run_start, the
worker in llm/training.py); this module joins the queue, the reward model and llm, as
DESIGN.md has it: annotations gives the pairs (the TRL export's own code), rewards the
prompts and the version, llm trains. The run's reward-side lineage (queue, version) is a
PolicyRun row written in the transaction that queues the run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from annotations.exports.records import preference_pairs
from annotations.exports.spec import ExportInvalid
from annotations.models import Queue
from core.stats import Share
from llm.models import ModelConfig, TrainingKind, TrainingRun, TrainingStatus
from llm.schemas import (
    RS_MAX_N,
    RS_MIN_N,
    DPOHyperparameters,
    PreferenceRow,
    RejectionSamplingHyperparameters,
)
from llm.services import dpo_run_start, rejection_sampling_run_start
from rewards.best_of_n import ExperimentInvalid, queue_prompts
from rewards.blind import BlindPair, BlindTally, blind_queue_create, blind_tally
from rewards.models import PolicyEval, PolicyRun, RewardModel, RewardVersion
from rewards.schemas import BlindSides
from rewards.services import MARKER

POLICY_KINDS = (TrainingKind.DPO, TrainingKind.REJECTION_SAMPLING)


@dataclass(frozen=True)
class PolicySettings:
    """What a researcher chooses beyond the kind, the parent, the queue and the name."""

    beta: float = 0.1  # DPO
    n: int = 4  # rejection sampling: samples a prompt
    learning_rate: float | None = None  # None: the kind's default
    max_steps: int = 0
    batch_size: int | None = None
    max_length: int = 256
    seed: int = 0
    sample_max_new_tokens: int = 64  # rejection sampling: tokens a sample


def queue_preference_rows(queue: Queue) -> list[PreferenceRow]:
    """The queue's preference pairs as DPO rows: the TRL export's pairs, one an item by
    majority vote (annotations.exports.records.preference_pairs)."""
    try:
        pairs = preference_pairs([queue.pk])
    except ExportInvalid as error:
        raise ValidationError(f"Queue {queue.name}: {error.message}") from None
    return [
        PreferenceRow(prompt=p["prompt"], chosen=p["chosen"], rejected=p["rejected"])
        for p in pairs
        if p["prompt"].strip() and p["chosen"].strip() and p["rejected"].strip()
    ]


def _active_version(reward_model: RewardModel | None) -> RewardVersion | None:
    if reward_model is None:
        return None
    version = reward_model.active_version
    if version is None or not version.artifact_path:
        return None
    return version if (Path(version.artifact_path) / MARKER).is_file() else None


def _gold_version(
    gold_model: RewardModel | None, proxy_model: RewardModel | None
) -> RewardVersion | None:
    """The gold scorer's active version; ValidationError for one that has none, or for the
    proxy's own model (a gold identical to the proxy says nothing)."""
    if gold_model is None:
        return None
    if proxy_model is not None and gold_model.pk == proxy_model.pk:
        raise ValidationError(
            "The gold reward model is the proxy itself: choose another reward model (trained "
            "on more, or other, labels) as the gold."
        )
    gold = _active_version(gold_model)
    if gold is None:
        raise ValidationError(
            f"Reward model {gold_model.name} has no active version to score with: train one "
            "that passes its evaluation gate first."
        )
    return gold


def policy_run_start(
    *,
    kind: str,
    parent: ModelConfig,
    name: str,
    queue: Queue,
    reward_model: RewardModel | None,
    settings: PolicySettings,
    gold_model: RewardModel | None = None,
    user: User | None = None,
) -> TrainingRun:
    """Queue a policy run and its PolicyRun lineage in one transaction (the task is sent on
    commit). ValidationError, and nothing created, for: a kind that is not a policy kind, a
    parent that is not a local model, a queue with no preference pairs (DPO) or no prompts
    (rejection sampling) or fewer than LLM_TRAINING_MIN_ROWS, rejection sampling without a
    reward model with an active version, n outside RS_MIN_N..RS_MAX_N, a name taken, a gold
    reward model without an active version or the same as the proxy.
    DPO's reward model is optional: its active version, if any, gives the report's proxy.
    The gold reward model is optional for both kinds: its active version scores the report's
    samples beside the proxy, so a researcher sees whether the proxy's gain is real."""
    if kind not in POLICY_KINDS:
        raise ValidationError(f"{kind!r} is not a policy training kind (dpo, rejection-sampling).")
    version = _active_version(reward_model)
    common: dict[str, Any] = {
        "max_steps": settings.max_steps,
        "max_length": settings.max_length,
        "seed": settings.seed,
    }
    if settings.learning_rate is not None:
        common["learning_rate"] = settings.learning_rate
    if settings.batch_size is not None:
        common["batch_size"] = settings.batch_size
    label = f"{reward_model.name} v{version.number}" if reward_model and version else ""
    gold = _gold_version(gold_model, reward_model)
    common["gold_version"] = gold.pk if gold else None
    common["gold_label"] = f"{gold_model.name} v{gold.number}" if gold_model and gold else ""
    with transaction.atomic():
        if kind == TrainingKind.DPO:
            pairs = queue_preference_rows(queue)
            if not pairs:
                raise ValidationError(
                    f"Queue {queue.name} has no preference pairs: DPO needs items labelled "
                    "A or B (ties and both-bad give none)."
                )
            hp = DPOHyperparameters(
                beta=settings.beta,
                reward_version=version.pk if version else None,
                reward_label=label,
                **common,
            )
            run = dpo_run_start(
                parent=parent, name=name, pairs=pairs, hyperparameters=hp, user=user,
                source=f"DPO on queue {queue.name} (#{queue.pk}): {len(pairs)} preference "
                "pairs, majority vote an item",
            )  # fmt: skip
        else:
            if not RS_MIN_N <= settings.n <= RS_MAX_N:
                raise ValidationError(
                    f"n is {settings.n}: sample between {RS_MIN_N} and {RS_MAX_N} "
                    "completions a prompt."
                )
            if reward_model is None or version is None:
                raise ValidationError(
                    "Rejection sampling ranks samples by a reward model: choose one with an "
                    "active version (one that passed its evaluation gate)."
                )
            try:
                prompts = queue_prompts(queue=queue)
            except ExperimentInvalid as error:
                raise ValidationError(error.message) from None
            if not prompts:
                raise ValidationError(f"Queue {queue.name} has no prompts to sample from.")
            hp_rs = RejectionSamplingHyperparameters(
                n=settings.n,
                sample_max_new_tokens=settings.sample_max_new_tokens,
                reward_version=version.pk,
                reward_label=label,
                **common,
            )
            run = rejection_sampling_run_start(
                parent=parent, name=name, prompts=prompts, hyperparameters=hp_rs, user=user,
                source=f"best of {settings.n} under {label} on the prompts of queue "
                f"{queue.name} (#{queue.pk})",
            )  # fmt: skip
        PolicyRun.objects.create(run=run, queue=queue, reward_version=version, gold_version=gold)
    return run


# --- blind pairwise evaluation of a finished run --------------------------------------------
EvalResult = BlindTally  # the new policy is X: its wins over the parent


def policy_eval_start(
    *, run: TrainingRun, members: Sequence[User], user: User | None = None
) -> PolicyEval:
    """A pairwise queue of the run's report samples (new policy against parent, the same
    held-out prompt), each item's sides drawn at random with a generator nobody can replay;
    the annotators see two responses and nothing else (rewards/blind.py). One transaction:
    the queue, its members, its items and the PolicyEval that keeps the sides.
    ValidationError, and nothing created, for a run that is not a finished policy run with
    samples, or one that has an evaluation already."""
    report = run.typed_report
    if run.status != TrainingStatus.DONE or not run.is_policy_run:
        raise ValidationError("Only a finished DPO or rejection-sampling run can be evaluated.")
    usable = [s for s in (report.samples if report else []) if s.new.strip() and s.parent.strip()]
    if not usable:
        raise ValidationError("The run's report has no samples to compare.")
    rng = random.SystemRandom()
    both: tuple[Literal["a", "b"], ...] = ("a", "b")
    pairs = [
        BlindPair(prompt=sample.prompt, x=sample.new, y=sample.parent, side=rng.choice(both),
                  external_id=f"sample-{number}")
        for number, sample in enumerate(usable)
    ]  # fmt: skip
    with transaction.atomic():
        if PolicyEval.objects.select_for_update().filter(run=run).exists():
            raise ValidationError("This run has a blind evaluation already.")
        queue, sides = blind_queue_create(
            # The judges see the queue's name: it names neither model nor run.
            name=f"Blind pairs, evaluation {run.pk}", pairs=pairs, members=members,
            instructions="Which response answers the prompt better? The two come from two "
            "models; which is which is hidden and differs from item to item.",
            user=user,
        )  # fmt: skip
        blind = BlindSides(new=sides)
        return PolicyEval.objects.create(run=run, queue=queue, created_by=user,
                                         sides=blind.model_dump(mode="json"))  # fmt: skip


def policy_eval_result(evaluation: PolicyEval) -> EvalResult:
    """Wins of the new policy among the A/B labels of the evaluation's queue."""
    tally = blind_tally(queue_id=evaluation.queue_id, x_sides=evaluation.typed_sides.new,
                        group=lambda _: 0)  # fmt: skip
    return tally.get(0, BlindTally(Share(0, 0), 0, 0))
