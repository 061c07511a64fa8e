"""The reward-model judge of an iteration's blind pairs: beside people's votes, a reward model
(rewards.RewardModel, its active version) reads each pair's two answers.

A researcher chooses the reward model on the line's page (`iteration_judge_start`); the
scoring runs in the worker (`iteration_pairs_score`, sent as
amplification.tasks.iteration_judge_task, routed to the `training` queue beside the rewards
app's scoring, since it loads a reward checkpoint and generates nothing). Each answer is
scored as the pair (question, answer) people saw in the item, through
rewards.scoring.version_rewards — the function behind the scoring API and the debate auto
judge, so the numbers are the ones the rest of the app gives for the same texts — and
P(first role wins) = σ(r_first − r_second) (rewards.scoring.preference). Like the debate auto
judge's per-version rows, each pair keeps the version that scored it; a re-score replaces
every pair's reading at once, so the page never mixes two versions.

Researchers only: nothing here is written onto the queue's items, so a person rating the pair
never sees it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction

from amplification.iterations import COMPARED
from amplification.models import Comparison, Iteration, IterationPair, JudgeStatus
from amplification.tasks import iteration_judge_task
from annotations.kinds import PairwisePayload
from core.stats import Share
from rewards.models import RewardModel, RewardVersion
from rewards.scoring import preference, version_rewards
from rewards.services import NoActiveVersion

JUDGE_METHOD = (
    "Method: each answer scored as (question, answer) by one version, P(first wins) = "
    "σ(r_first − r_second); per held-out question the first side wins when P(first) > 0.5; "
    "the share of those questions, with a Wilson 95 % interval over questions."
)
# A version promoted while a scoring runs: score again with it, at most this many times.
ATTEMPTS = 3
log = logging.getLogger(__name__)


def iteration_judge_start(*, iteration_id: int, reward_model: RewardModel) -> RewardVersion:
    """Choose `reward_model` to judge the iteration's blind pairs and send the scoring to the
    worker (on commit). Returns the active version it will score with. Refused, nothing
    changed: no pairs yet, or a reward model with no active version. Locks the iteration."""
    with transaction.atomic():
        iteration = Iteration.objects.select_for_update().get(pk=iteration_id)
        if not iteration.pairs.exists():
            raise ValidationError(
                "There are no blind pairs to judge yet: send the held-out answers to a "
                "pairwise queue first."
            )
        chosen = RewardModel.objects.select_related("active_version").get(pk=reward_model.pk)
        if chosen.active_version is None:
            raise ValidationError(
                f"{chosen.name} has no active version: train one that passes its gate, or "
                "choose another reward model."
            )
        iteration.reward_model = chosen
        iteration.judge_status = JudgeStatus.QUEUED
        iteration.judge_error = ""
        iteration.save(update_fields=["reward_model", "judge_status", "judge_error"])
        transaction.on_commit(lambda: iteration_judge_task.delay(iteration.pk))
    return chosen.active_version


def _failed(iteration_id: int, reason: str) -> None:
    Iteration.objects.filter(pk=iteration_id).update(
        judge_status=JudgeStatus.FAILED, judge_error=reason
    )


def _first_probability(pair: IterationPair, reward_a: float, reward_b: float) -> float:
    p_a = preference(reward_a, reward_b)
    return p_a if pair.a_role == COMPARED[pair.comparison][0] else 1.0 - p_a


def iteration_pairs_score(*, iteration_id: int) -> int:
    """Worker side (loads the checkpoint): score every blind pair of the iteration with its
    chosen reward model's active version, and replace every pair's reading with these (pairs
    not read this time lose theirs). Returns pairs scored. The write locks the iteration and
    checks the version is still the active one; if another went live meanwhile, it scores
    again with that one. No reward model, no active version or no checkpoint: FAILED, with
    the reason, and the old readings stay."""
    for _ in range(ATTEMPTS):
        iteration = Iteration.objects.select_related("reward_model__active_version").filter(
            pk=iteration_id
        ).first()  # fmt: skip
        if iteration is None:
            return 0
        chosen = iteration.reward_model
        version = chosen.active_version if chosen is not None else None
        if chosen is None or version is None:
            name = chosen.name if chosen is not None else "The chosen reward model"
            _failed(iteration_id, f"{name} has no active version any more.")
            return 0
        pairs = list(iteration.pairs.select_related("item").order_by("pk"))
        texts: list[tuple[str, str]] = []
        for pair in pairs:
            # Exactly the texts people rate in the item.
            shown = PairwisePayload.model_validate(pair.item.payload)
            texts += [(shown.prompt, shown.response_a), (shown.prompt, shown.response_b)]
        try:
            rewards = version_rewards(version=version, pairs=texts) if texts else []
        except NoActiveVersion as error:
            _failed(iteration_id, str(error))
            return 0
        except Exception as error:
            _failed(iteration_id, f"Scoring failed ({type(error).__name__}).")
            raise
        for n, pair in enumerate(pairs):
            pair.judge_version = version
            pair.judge_p_first = _first_probability(pair, rewards[2 * n], rewards[2 * n + 1])
        with transaction.atomic():
            locked = Iteration.objects.select_for_update().get(pk=iteration_id)
            now = (
                RewardModel.objects.filter(pk=locked.reward_model_id or 0)
                .values_list("active_version_id", flat=True)
                .first()
            )
            if now != version.pk:
                continue  # chosen again or promoted meanwhile: read the choice again
            IterationPair.objects.bulk_update(pairs, ["judge_version", "judge_p_first"])
            locked.pairs.exclude(pk__in=[p.pk for p in pairs]).update(
                judge_version=None, judge_p_first=None
            )
            locked.judge_status = JudgeStatus.DONE
            locked.judge_error = ""
            locked.save(update_fields=["judge_status", "judge_error"])
        log.info("iteration %s: %s pairs judged by %s", iteration_id, len(pairs), version)
        return len(pairs)
    _failed(iteration_id, "The active version kept changing while scoring: score again.")
    return 0


# --- the page's reading -----------------------------------------------------------------
@dataclass
class IterationJudge:
    """What the researcher's block shows: the chosen reward model (None: none chosen), its
    active version now (None: none active), the version the figures are from (None: not
    scored), and per comparison the share of questions on which the first side wins."""

    reward_model: RewardModel | None
    active: RewardVersion | None
    version: RewardVersion | None
    status: str
    error: str
    rates: dict[str, Share] = field(default_factory=dict)
    scored: int = 0  # pairs with a reading from `version`
    pairs: int = 0

    @property
    def stale(self) -> bool:
        """The figures are from a version that is no longer the active one."""
        return self.version is not None and (self.active is None or self.active != self.version)


def iteration_judge(iteration: Iteration) -> IterationJudge:
    """The reward-model judge's reading of an iteration (method: JUDGE_METHOD). A pair of a
    question already counted (the same answers queued twice) is counted once."""
    chosen = iteration.reward_model
    if chosen is not None:
        chosen = RewardModel.objects.select_related("active_version").get(pk=chosen.pk)
    pairs = list(iteration.pairs.select_related("judge_version__reward_model").order_by("pk"))
    judge = IterationJudge(
        reward_model=chosen, active=chosen.active_version if chosen else None, version=None,
        status=iteration.judge_status, error=iteration.judge_error, pairs=len(pairs),
    )  # fmt: skip
    read = [p for p in pairs if p.judge_version is not None and p.judge_p_first is not None]
    if not read:
        return judge
    judge.version = max((p.judge_version for p in read), key=lambda v: v.pk)  # type: ignore[union-attr]
    by_question: dict[tuple[str, str], float] = {}
    for pair in read:
        if pair.judge_version == judge.version:
            judge.scored += 1
            by_question.setdefault((pair.comparison, pair.question), pair.judge_p_first)  # type: ignore[arg-type]
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (comparison, _question), p_first in by_question.items():
        counts[comparison][0] += p_first > 0.5
        counts[comparison][1] += 1
    judge.rates = {c: Share(*counts[c]) for c in Comparison.values}
    return judge
