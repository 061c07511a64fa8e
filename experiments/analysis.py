"""The analysis of an experiment: one read of its responses, then the figures, each with its n,
its interval and its method (experiments/stats.py). The page, the API and the exports all
read this module, so they cannot disagree."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from core import sql
from core.stats import METHOD as WILSON_METHOD
from core.stats import Share
from experiments import stats
from experiments.assignment import METHOD as ASSIGNMENT_METHOD
from experiments.models import (
    Arm,
    ArmItem,
    Assistance,
    AssistanceFlag,
    AssistanceText,
    Experiment,
    Flag,
    Participant,
    Response,
)

_RESPONSES = f"""
SELECT r.participant_id, p.arm_id, r.correct, r.late, r.timed_out, r.time_ms,
       r.probability_correct, ai.source_id
FROM {Response._meta.db_table} r JOIN {Participant._meta.db_table} p ON p.id = r.participant_id
JOIN {ArmItem._meta.db_table} ai ON ai.id = r.arm_item_id
WHERE p.experiment_id = %(experiment)s
ORDER BY r.id
"""


@dataclass(frozen=True)
class LabelRow:
    """One response, as the exports write it."""

    participant: str  # external id
    arm: str
    item: int  # the question-set item, or the bank question
    value: str  # the label as JSON text; "" when the item timed out
    correct: bool | None
    probability_correct: float | None  # question-bank arms: the probability on the correct answer
    late: bool
    timed_out: bool
    time_ms: int | None
    answered_at: str


@dataclass(frozen=True)
class Calibration:
    """How well an arm's stated probabilities match how often they were right."""

    source: str  # whose probabilities: the participants', or the assistant's shown to them
    n: int  # answers scored
    brier: stats.Interval | None
    bins: list[stats.ReliabilityBin]


PARTICIPANTS_PROBABILITY = "participants' probabilities"
SUGGESTION_CONFIDENCE = "the assistant's suggestion confidence"


@dataclass
class ArmFigures:
    arm: Arm
    accuracy: Share
    participants: int
    labels: int
    late: int
    timed_out: int
    mean_time_s: float | None
    tallies: list[tuple[int, int]] = field(default_factory=list)
    model_alone: Share | None = None
    helped: Share | None = None
    wrong: Share | None = None
    calibration: Calibration | None = None


@dataclass(frozen=True)
class Comparison:
    arm: Arm
    control: Arm
    difference: stats.Interval | None
    p_value: float | None
    sandwich: stats.Interval | None


@dataclass
class Analysis:
    experiment: Experiment
    arms: list[ArmFigures]
    comparisons: list[Comparison]
    methods: dict[str, str]


def experiment_analysis(experiment: Experiment) -> Analysis:
    """Per arm: accuracy on gold (Wilson), participants, labels, late and timed-out labels,
    time per item, model-alone accuracy and critique flag rates; per assisted arm against the
    first unassisted one (or the first arm): the difference with a participant-clustered
    bootstrap interval, a permutation p-value and, where the gold is experts', the sandwich
    score."""
    arms = list(experiment.arms.order_by("position").select_related("model_config"))
    # Only the columns the figures need (no label JSON, no timestamps: the exports read
    # those, through experiment_label_rows), as plain SQL: at 5,000 labels the ORM's
    # per-value converters cost more than the query (bench/experiments.py).
    responses = sql.fetch_all(_RESPONSES, {"experiment": experiment.pk})
    participants_by_arm: dict[int, set[int]] = defaultdict(set)
    for arm_id, participant_id in experiment.participants.values_list("arm_id", "pk"):
        participants_by_arm[arm_id].add(participant_id)
    per_participant: dict[int, dict[int, list[int]]] = defaultdict(dict)
    times: dict[int, list[float]] = defaultdict(list)
    late: dict[int, int] = defaultdict(int)
    timed_out: dict[int, int] = defaultdict(int)
    labels: dict[int, int] = defaultdict(int)
    suggestions = _suggestion_probabilities(arms)
    # Per arm and participant: the probabilities on the correct answer of their counted answers.
    probabilities: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (
        participant_id, arm_id, correct, is_late, is_timed_out, time_ms, p_correct, source_id,
    ) in responses:  # fmt: skip
        tally = per_participant[arm_id].setdefault(participant_id, [0, 0])
        if is_timed_out:
            timed_out[arm_id] += 1
            continue
        labels[arm_id] += 1
        if time_ms is not None:
            times[arm_id].append(time_ms / 1000)
        if is_late:
            late[arm_id] += 1
            if experiment.late_excluded:
                continue
        if correct is not None:
            tally[0] += 1 if correct else 0
            tally[1] += 1
        if p_correct is None and source_id is not None:
            p_correct = suggestions.get((arm_id, source_id))
        if p_correct is not None:
            probabilities[arm_id][participant_id].append(p_correct)
    figures = []
    for arm in arms:
        tallies = [tuple(t) for t in per_participant[arm.pk].values()]
        k = sum(t[0] for t in tallies)
        n = sum(t[1] for t in tallies)
        figures.append(
            ArmFigures(
                arm=arm,
                accuracy=Share(k, n),
                participants=len(participants_by_arm[arm.pk]),
                labels=labels[arm.pk],
                late=late[arm.pk],
                timed_out=timed_out[arm.pk],
                mean_time_s=stats.mean_or_none(times[arm.pk]),
                tallies=tallies,  # type: ignore[arg-type]
                model_alone=_model_alone(arm),
                calibration=_calibration(arm, probabilities.get(arm.pk), experiment.seed),
                **_flag_rates(arm),
            )
        )
    return Analysis(
        experiment=experiment,
        arms=figures,
        comparisons=_comparisons(experiment, figures),
        methods=_methods(experiment),
    )


def experiment_label_rows(experiment: Experiment) -> list[LabelRow]:
    """Every response, one row each, for the CSV and Parquet exports."""
    found = (
        Response.objects.filter(participant__experiment=experiment)
        .values_list(
            "participant__external_id", "participant__arm__name", "arm_item__source_id",
            "arm_item__bank_question_id", "label__value", "correct", "probability_correct",
            "late", "timed_out", "time_ms", "answered_at",
        )
        .order_by("id")
    )  # fmt: skip
    return [
        LabelRow(
            participant=external,
            arm=arm,
            item=source if source is not None else question,
            value="" if value is None else json.dumps(value, sort_keys=True),
            correct=correct,
            probability_correct=probability_correct,
            late=is_late,
            timed_out=is_timed_out,
            time_ms=time_ms,
            answered_at=answered_at.isoformat(),
        )  # fmt: skip
        for (
            external,
            arm,
            source,
            question,
            value,
            correct,
            probability_correct,
            is_late,
            is_timed_out,
            time_ms,
            answered_at,
        ) in found  # fmt: skip
    ]


def _comparisons(experiment: Experiment, figures: list[ArmFigures]) -> list[Comparison]:
    if len(figures) < 2:
        return []
    control = next((f for f in figures if f.arm.unaided), figures[0])
    out = []
    for treated in figures:
        if treated is control:
            continue
        seed = experiment.seed
        out.append(
            Comparison(
                arm=treated.arm,
                control=control.arm,
                difference=stats.difference_bootstrap(treated.tallies, control.tallies, seed=seed),
                p_value=stats.permutation_p(treated.tallies, control.tallies, seed=seed),
                sandwich=(
                    stats.sandwich_bootstrap(treated.tallies, control.tallies, seed=seed)
                    if experiment.expert_gold and not treated.arm.unaided
                    else None
                ),
            )
        )
    return out


def _suggestion_probabilities(arms: list[Arm]) -> dict[tuple[int, int], float]:
    """(arm, question-set item) → the probability the suggestion arm's assistant put on the
    correct answer: its confidence when its suggestion equals gold, 1 − it when not.
    Suggestions that give no confidence (or no answer) are left out."""
    found: dict[tuple[int, int], float] = {}
    for arm in arms:
        if arm.assistance != Assistance.SUGGESTION:
            continue
        rows = AssistanceText.objects.filter(
            source__in=arm.arm_items.values("source"),
            model_config=arm.model_config_id,
            prompt_version=arm.prompt_version,
            kind=arm.assistance,
            confidence__isnull=False,
            suggested_value__isnull=False,
        ).values_list("source_id", "confidence", "suggested_value", "source__gold_value")
        for source_id, confidence, value, gold in rows:
            if confidence is not None:  # (filtered out above; the type does not know)
                found[(arm.pk, source_id)] = confidence if value == gold else 1 - confidence
    return found


def _calibration(
    arm: Arm, by_participant: dict[int, list[float]] | None, seed: int
) -> Calibration | None:
    """The arm's Brier score (participant-clustered bootstrap) and reliability bins, from the
    probabilities its counted answers carry: a bank arm's participants' own, or the
    suggestion shown beside each answer. None for an arm whose answers carry none."""
    if arm.protocol:
        source = PARTICIPANTS_PROBABILITY
    elif arm.assistance == Assistance.SUGGESTION:
        source = SUGGESTION_CONFIDENCE
    else:
        return None
    everyone = [p for found in (by_participant or {}).values() for p in found]
    errors = [
        (stats.squared_errors(found), len(found)) for found in (by_participant or {}).values()
    ]
    return Calibration(
        source=source,
        n=len(everyone),
        brier=stats.brier_bootstrap(errors, seed=seed),
        bins=stats.reliability(everyone),
    )


def _model_alone(arm: Arm) -> Share | None:
    """The arm's suggestions scored on gold: an item whose suggestion names no answer counts
    as wrong. Only suggestion arms name answers."""
    if arm.assistance != Assistance.SUGGESTION:
        return None
    pairs = AssistanceText.objects.filter(
        source__in=arm.arm_items.values("source"),
        model_config=arm.model_config_id,
        prompt_version=arm.prompt_version,
        kind=arm.assistance,
    ).values_list("suggested_value", "source__gold_value")
    found = list(pairs)
    return Share(sum(1 for value, gold in found if value is not None and value == gold), len(found))


def _flag_rates(arm: Arm) -> dict[str, Share | None]:
    """Of the responses in this arm (answered, with assistance shown), the share flagged
    helped and the share flagged wrong."""
    if not arm.assisted:
        return {"helped": None, "wrong": None}
    answered = Response.objects.filter(participant__arm=arm, timed_out=False).count()
    flags = AssistanceFlag.objects.filter(participant__arm=arm)
    return {
        "helped": Share(flags.filter(flag=Flag.HELPED).count(), answered),
        "wrong": Share(flags.filter(flag=Flag.WRONG).count(), answered),
    }


def _methods(experiment: Experiment) -> dict[str, str]:
    late = "left out of the accuracy" if experiment.late_excluded else "counted in the accuracy"
    return {
        "assignment": ASSIGNMENT_METHOD + f" (seed {experiment.seed})",
        "accuracy": (
            (
                "share of counted answers that put more than 50 % on the question's correct "
                "answer (as debate judges are scored); "
            )
            if experiment.on_bank
            else "share of counted labels equal to the item's gold label; "
        )
        + WILSON_METHOD,
        "late": (
            f"a label is late when it arrives more than the arm's time limit plus "
            f"{experiment.late_grace_s} s of grace after the item was served (server clocks); "
            f"late labels are {late}; items that timed out have no label and are not counted"
        ),
        "time": "mean seconds from serving an item to its label (server clocks)",
        "difference": stats.BOOTSTRAP_METHOD,
        "p_value": stats.PERMUTATION_METHOD,
        "sandwich": stats.SANDWICH_METHOD,
        "model_alone": (
            "the suggestion arm's own answers scored on gold (a suggestion naming no answer "
            "counts as wrong); " + WILSON_METHOD
        ),
        "flags": "flags per answered item in the arm; " + WILSON_METHOD,
        "calibration": (
            "where answers carry a probability: a question-bank arm's participants give one "
            "for answer A (the probability on the correct answer is read from it); a "
            "suggestion arm's answers carry the assistant's stated confidence in its suggested "
            "answer (scored on whether that answer equals gold, once per answer made beside "
            "it). Answers counted as for the accuracy. "
            + stats.BRIER_METHOD
            + "; "
            + stats.RELIABILITY_METHOD
        ),
    }
