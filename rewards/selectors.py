"""Reads shared by the pages and the API."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from rewards.charts import (
    BestOfNChart,
    CurveInput,
    HumanGoldChart,
    LineChart,
    best_of_n_chart,
    calibration_chart,
    human_gold_chart,
    line_chart,
)
from rewards.human_gold import HumanCurve, human_gold_result
from rewards.models import (
    GOOD,
    BestOfNExperiment,
    HumanGold,
    LabelSource,
    RewardModel,
    RewardVersion,
    Status,
)
from rewards.schemas import AnalysisRecord


def reward_models() -> QuerySet[RewardModel]:
    return RewardModel.objects.select_related("active_version").prefetch_related("queues")


def reward_model_versions(reward_model: RewardModel) -> QuerySet[RewardVersion]:
    return reward_model.versions.select_related("created_by").defer("label_ids")


@dataclass(frozen=True)
class Charts:
    loss: LineChart
    accuracy: LineChart
    calibration: LineChart
    shown: RewardVersion | None


def reward_model_charts(reward_model: RewardModel, versions: list[RewardVersion]) -> Charts:
    """The loss curve of the newest version that trained, accuracy over versions, and the
    calibration of the active version (else the newest evaluated one)."""
    trained = [v for v in versions if v.typed_metrics.loss_curve]
    newest = trained[0] if trained else None
    loss = line_chart(
        [(float(s), float(v)) for s, v in newest.typed_metrics.loss_curve] if newest else [],
        x_label="step", fmt="{:.3f}",
    )  # fmt: skip
    evaluated = [v for v in reversed(versions) if v.typed_metrics.heldout_accuracy is not None]
    accuracy = line_chart(
        [(float(v.number), float(v.typed_metrics.heldout_accuracy or 0)) for v in evaluated],
        y_range=(0.0, 1.0), x_label="version", fmt="{:.0%}",
        labels=[f"v{v.number}: {v.heldout.text if v.heldout else '–'} ({v.status})"
                for v in evaluated],
    )  # fmt: skip
    shown = reward_model.active_version or (evaluated[-1] if evaluated else None)
    bins = shown.typed_metrics.calibration if shown else []
    calibration = calibration_chart([(b.predicted, b.observed, b.count) for b in bins])
    return Charts(loss, accuracy, calibration, shown)


def can_roll_back(version: RewardVersion) -> bool:
    return version.status in GOOD and version.status != Status.ACTIVE


def label_source_siblings(reward_model: RewardModel) -> list[RewardModel]:
    """Reward models reading any of this one's queues, this one included, ordered human,
    AI, both (then by name): RLHF and RLAIF side by side on the same queue."""
    queue_ids = list(reward_model.queues.values_list("pk", flat=True))
    found = reward_models().filter(queues__in=queue_ids).distinct()
    order = {source: n for n, source in enumerate(LabelSource.values)}
    return sorted(found, key=lambda rm: (order[rm.label_source], rm.name))


def best_of_n_chart_for(records: list[AnalysisRecord]) -> BestOfNChart:
    """The over-optimisation plot of an experiment's analysis (one curve pair per proxy)."""
    curves = []
    for record in records:
        a = record.analysis
        fit = a.fit
        curves.append(
            CurveInput(
                name=record.proxy_name,
                proxy=[(p.n, p.d, p.proxy.value, p.proxy.low, p.proxy.high) for p in a.points],
                gold=[(p.n, p.d, p.gold.value, p.gold.low, p.gold.high)
                      for p in a.points if p.gold is not None],
                alpha=fit.alpha.value if fit.alpha else 0.0,
                beta=fit.beta.value if fit.beta else 0.0, alpha_proxy=fit.alpha_proxy.value,
                peak_d=fit.peak_d.value if fit.peak_d else None,
            )
        )  # fmt: skip
    return best_of_n_chart(curves)


def best_of_n_experiments() -> QuerySet[BestOfNExperiment]:
    return BestOfNExperiment.objects.select_related(
        "policy", "gold__reward_model", "created_by"
    ).defer("prompts")


@dataclass(frozen=True)
class HumanGoldView:
    """An experiment's human gold as the page and the API read it."""

    record: HumanGold
    curve: HumanCurve
    chart: HumanGoldChart


def human_gold_for(experiment: BestOfNExperiment) -> HumanGoldView | None:
    """The human gold curve of the experiment's labels so far; None before its queue exists
    (or for a model gold)."""
    record = HumanGold.objects.select_related("queue").filter(experiment=experiment).first()
    if record is None:
        return None
    curve = human_gold_result(record, experiment.samples_per_prompt, seed=experiment.seed)
    fit = curve.fit
    chart = human_gold_chart(
        [(p.n, p.d, p.wins.value, p.wins.low, p.wins.high, p.wins.n) for p in curve.points],
        alpha=fit.alpha.value if fit else None, beta=fit.beta.value if fit else None,
        peak_d=fit.peak_d.value if fit and fit.peak_d else None,
    )  # fmt: skip
    return HumanGoldView(record, curve, chart)
