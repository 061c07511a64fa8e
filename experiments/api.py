"""The experiments API (mounted by config/api.py at /api/experiments/): create an experiment
with its arms, add an arm before anyone joins, read the analysis. Researchers only. The join
flow is a page (/join/<slug>/), not an API: participants hold no token.

The same services and the same analysis run behind the pages."""

from __future__ import annotations

from typing import Literal

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Schema, Status
from pydantic import Field

from annotations.models import Queue
from config.api_contract import Body, Id, Refusal, ShareOut, api_user, errors, researchers
from core.stats import Share
from core.text import RequiredText, StoredText
from debate.models import QuestionBank
from experiments.analysis import Calibration, experiment_analysis
from experiments.errors import ExperimentError
from experiments.models import MAX_TIME_LIMIT_S, Arm, Experiment
from experiments.services import ArmSpec, arm_add, experiment_create
from llm.models import ModelConfig

experiments_router = Router(tags=["experiments"], auth=researchers)


class ArmIn(Body):
    name: RequiredText = Field(max_length=100)
    assistance: Literal["none", "critique", "suggestion"] = Field(
        default="none", description="a rating-queue experiment's arms: the assistance shown"
    )
    protocol: Literal["direct", "consultancy", "debate"] | None = Field(
        default=None,
        description="a question-bank experiment's arms (required there, refused elsewhere)",
    )
    model_config_id: Id | None = Field(
        default=None,
        description="required when `assistance` is not `none`, and for consultancy and debate "
        "arms (the model that speaks their transcripts)",
    )
    prompt: StoredText = Field(
        default="", max_length=20_000, description="`{item}` stands for the item; empty: default"
    )
    time_limit_s: int | None = Field(default=None, ge=1, le=MAX_TIME_LIMIT_S)


class ExperimentIn(Body):
    name: RequiredText = Field(max_length=200)
    slug: str = Field(pattern=r"^[-a-zA-Z0-9_]+$", min_length=1, max_length=60)
    question_set_id: Id | None = Field(
        default=None, description="a pairwise or Likert queue with gold items"
    )
    question_bank_id: Id | None = Field(
        default=None,
        description="or a debate question bank (exactly one of the two): its questions, each "
        "with a correct answer, judged under protocol arms",
    )
    arms: list[ArmIn] = Field(min_length=2, max_length=10)
    consent: RequiredText = Field(max_length=50_000)
    instructions: StoredText = Field(default="", max_length=50_000)
    completion_code: str = Field(pattern=r"^[A-Za-z0-9_-]+$", min_length=1, max_length=64)
    completion_url: str = Field(default="", max_length=200, pattern=r"^(https?://\S+)?$")
    labels_per_item: int = Field(default=50, ge=1, le=50)
    late_grace_s: int = Field(default=2, ge=0, le=60)
    late_excluded: bool = True
    expert_gold: bool = False
    seed: int | None = Field(default=None, ge=0, le=2**62)


class ArmOut(Schema):
    id: int
    position: int
    name: str
    assistance: str
    protocol: str
    model_config_id: int | None
    time_limit_s: int | None
    prompt_version: str


class ExperimentOut(Schema):
    id: int
    name: str
    slug: str
    seed: int
    question_set_id: int | None
    question_bank_id: int | None
    link_open: bool
    frozen: bool
    arms: list[ArmOut]


class IntervalOut(Schema):
    value: float
    low: float
    high: float
    method: str


class ReliabilityBinOut(Schema):
    low: float
    high: float
    n: int
    confidence: float | None
    correct: int


class CalibrationOut(Schema):
    source: str
    n: int
    brier: IntervalOut | None
    bins: list[ReliabilityBinOut]


class ArmFiguresOut(Schema):
    arm: str
    assistance: str
    protocol: str
    participants: int
    labels: int
    late: int
    timed_out: int
    mean_time_s: float | None
    accuracy: ShareOut
    model_alone: ShareOut | None
    flagged_helped: ShareOut | None
    flagged_wrong: ShareOut | None
    calibration: CalibrationOut | None


class ComparisonOut(Schema):
    arm: str
    control: str
    difference: IntervalOut | None
    p_value: float | None
    p_value_method: str
    sandwich: IntervalOut | None


class AnalysisOut(Schema):
    experiment: str
    arms: list[ArmFiguresOut]
    comparisons: list[ComparisonOut]
    methods: dict[str, str]


def _share(share: Share | None) -> ShareOut | None:
    if share is None:
        return None
    return ShareOut.of(share)


def _experiment_out(experiment: Experiment) -> ExperimentOut:
    return ExperimentOut(
        id=experiment.pk,
        name=experiment.name,
        slug=experiment.slug,
        seed=experiment.seed,
        question_set_id=experiment.question_set_id,
        question_bank_id=experiment.question_bank_id,
        link_open=experiment.link_open,
        frozen=experiment.frozen,
        arms=[_arm_out(arm) for arm in experiment.arms.order_by("position")],
    )


def _arm_out(arm: Arm) -> ArmOut:
    return ArmOut(
        id=arm.pk, position=arm.position, name=arm.name, assistance=arm.assistance,
        protocol=arm.protocol, model_config_id=arm.model_config_id,
        time_limit_s=arm.time_limit_s, prompt_version=arm.prompt_version,
    )  # fmt: skip


def _refused(error: ValidationError) -> Refusal:
    if hasattr(error, "error_dict"):
        problems = [
            {"field": field, "message": message}
            for field, messages in error.message_dict.items()
            for message in messages
        ]
    else:
        problems = [{"field": "", "message": message} for message in error.messages]
    return Refusal(422, "The experiment was not created: " + problems[0]["message"], problems)


def _spec(arm: ArmIn) -> ArmSpec:
    config = None
    if arm.model_config_id is not None:
        config = get_object_or_404(ModelConfig, pk=arm.model_config_id)
    return ArmSpec(name=arm.name, assistance=arm.assistance, model_config=config,
                   prompt=arm.prompt, time_limit_s=arm.time_limit_s,
                   protocol=arm.protocol or "")  # fmt: skip


@experiments_router.post("/", response={201: ExperimentOut} | errors(403, 404, 409))
def experiment_create_api(request: HttpRequest, body: ExperimentIn) -> Status[ExperimentOut]:
    """Create an experiment and its arms, all or nothing. Its questions: a rating queue's gold
    items (arms give assistance: none, critique, suggestion) or a debate question bank (arms
    are protocols: direct, consultancy, debate; consultancy and debate transcripts are
    generated ahead, and the study link opens to newcomers once they are). Refused (422):
    fewer than two arms, a time limit outside 1–3600 s, an assisted, consultancy or debate
    arm without a model config, protocol arms on a rating queue or assistance arms on a bank,
    neither or both of a queue and a bank, a question set without gold, a bank without
    questions with a correct answer. A name or slug in use: 409."""
    question_set = None
    if body.question_set_id is not None:
        question_set = get_object_or_404(Queue, pk=body.question_set_id)
    question_bank = None
    if body.question_bank_id is not None:
        question_bank = get_object_or_404(QuestionBank, pk=body.question_bank_id)
    specs = [_spec(arm) for arm in body.arms]
    if (
        Experiment.objects.filter(name=body.name.strip()).exists()
        or Experiment.objects.filter(slug=body.slug).exists()
    ):
        raise Refusal(409, "An experiment with that name or slug exists.")
    try:
        experiment = experiment_create(
            name=body.name, slug=body.slug, question_set=question_set,
            question_bank=question_bank, arms=specs,
            consent=body.consent, instructions=body.instructions,
            completion_code=body.completion_code, completion_url=body.completion_url,
            labels_per_item=body.labels_per_item, late_grace_s=body.late_grace_s,
            late_excluded=body.late_excluded, expert_gold=body.expert_gold, seed=body.seed,
            user=api_user(request),
        )  # fmt: skip
    except ValidationError as error:
        raise _refused(error) from None
    return Status(201, _experiment_out(experiment))


@experiments_router.get("/{experiment_id}", response={200: ExperimentOut} | errors(403, 404))
def experiment_read(request: HttpRequest, experiment_id: Id) -> ExperimentOut:
    return _experiment_out(get_object_or_404(Experiment, pk=experiment_id))


@experiments_router.post("/{experiment_id}/arms", response={201: ArmOut} | errors(403, 404, 409))
def arm_add_api(request: HttpRequest, experiment_id: Id, body: ArmIn) -> Status[ArmOut]:
    """Add an arm; refused (409, saying why) once a participant has joined."""
    experiment = get_object_or_404(Experiment, pk=experiment_id)
    try:
        arm: Arm = arm_add(experiment=experiment, spec=_spec(body))
    except ExperimentError as error:
        raise Refusal(error.status, error.message) from None
    except ValidationError as error:
        raise _refused(error) from None
    return Status(201, _arm_out(arm))


def _calibration(found: Calibration | None, method: str) -> CalibrationOut | None:
    if found is None:
        return None
    brier = found.brier
    return CalibrationOut(
        source=found.source,
        n=found.n,
        brier=None if brier is None else IntervalOut(
            value=brier.value, low=brier.low, high=brier.high, method=method
        ),
        bins=[ReliabilityBinOut(low=b.low, high=b.high, n=b.n, confidence=b.confidence,
                                correct=b.correct) for b in found.bins],
    )  # fmt: skip


@experiments_router.get("/{experiment_id}/analysis", response={200: AnalysisOut} | errors(403, 404))
def analysis_read(request: HttpRequest, experiment_id: Id) -> AnalysisOut:
    """The analysis page's figures, each with its n, interval and method."""
    analysis = experiment_analysis(get_object_or_404(Experiment, pk=experiment_id))

    def interval(found: object, method: str) -> IntervalOut | None:
        if found is None:
            return None
        return IntervalOut(value=found.value, low=found.low, high=found.high, method=method)  # type: ignore[attr-defined]

    return AnalysisOut(
        experiment=analysis.experiment.name,
        arms=[
            ArmFiguresOut(
                arm=row.arm.name,
                assistance=row.arm.assistance,
                protocol=row.arm.protocol,
                participants=row.participants,
                labels=row.labels,
                late=row.late,
                timed_out=row.timed_out,
                mean_time_s=row.mean_time_s,
                accuracy=_share(row.accuracy),  # type: ignore[arg-type]
                model_alone=_share(row.model_alone),
                flagged_helped=_share(row.helped),
                flagged_wrong=_share(row.wrong),
                calibration=_calibration(row.calibration, analysis.methods["calibration"]),
            )  # fmt: skip
            for row in analysis.arms
        ],
        comparisons=[
            ComparisonOut(
                arm=c.arm.name,
                control=c.control.name,
                difference=interval(c.difference, analysis.methods["difference"]),
                p_value=c.p_value,
                p_value_method=analysis.methods["p_value"],
                sandwich=interval(c.sandwich, analysis.methods["sandwich"]),
            )  # fmt: skip
            for c in analysis.comparisons
        ],
        methods=analysis.methods,
    )
