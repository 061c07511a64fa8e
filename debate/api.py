"""The debate research API (mounted by config/api.py at /api/debates, batches at /batches):
list and fetch debates in the export schema, import records, create debates and batches,
read analytics. Researchers only — a judge never reaches a passage or an answer through it.
The pages and this API call the same selectors and services."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from ninja import Query, Router, Schema, Status
from ninja.errors import HttpError
from pydantic import Field

from config.api_contract import Body, Id, ShareOut, api_user, errors, researchers
from core.roles import Role, user_has_role
from core.stats import Share
from core.text import StoredText
from core.types import IsoDate
from debate.models import Debate, DebateBatch, Protocol, QuestionBank, Side
from debate.records import (
    Answer,
    BatchSpec,
    DebateRecord,
    Name,
    Passage,
    Question,
    Text,
)
from debate.research.analytics import (
    GROUPINGS,
    Filters,
    MarketStats,
    MeanWithInterval,
    analytics_compute,
)
from debate.research.batches import batch_create
from debate.research.records import (
    debate_record,
    debates_for_export,
    record_name,
    records_upsert,
)
from debate.research.selectors import debates_for_research_export
from debate.research.tournaments import tournament_compute
from debate.services import debate_create
from llm.models import ModelConfig

# Researchers only (config/api.py checks the role before reading any input).
router = Router(tags=["debates"], auth=researchers)
batches = Router(tags=["debate batches"], auth=researchers)


# --- schemas ----------------------------------------------------------------------------------
class DebateSummary(Schema):
    id: int
    name: str
    source: str
    protocol: str
    human_debaters: bool
    status: str
    question: str
    correct_side: str
    batch_id: int | None
    created_at: datetime
    url: str


class DebatePage(Schema):
    count: int
    results: list[DebateSummary]


class DebateListQuery(Body):
    source: Literal["", "arbiter", "nyu-2023"] = ""
    protocol: Literal["", "debate", "consultancy", "market"] = ""
    batch: Id | None = None
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=10_000_000)


class DebateIn(Body):
    """A live debate, as the New debate page makes it."""

    question: Question
    answer_a: Answer
    answer_b: Answer
    correct_side: Literal["", "a", "b"] = ""
    passage: Passage = ""
    protocol: Literal["debate", "consultancy"] = "debate"
    turn_order: Literal["simultaneous", "sequential"] = "simultaneous"
    rounds_mode: Literal["fixed", "judge_ends"] = "judge_ends"
    max_rounds: int = Field(default=3, ge=1, le=10)
    speech_char_limit: int = Field(default=750, ge=50, le=10_000)
    quote_char_limit: int = Field(default=250, ge=0, le=10_000)
    debater_a_config_id: Id
    debater_b_config_id: Id | None = None
    judge_username: StoredText = Field(min_length=1, max_length=150)


class ImportIn(Body):
    records: list[DebateRecord] = Field(min_length=1, max_length=200)


class DebateImportOut(Schema):
    names: list[str]  # every record's debate, in order
    created: list[str]  # the debates this import created, and those it updated
    updated: list[str]


class BatchIn(Body):
    name: Name = Field(min_length=1)
    bank_id: Id
    spec: BatchSpec
    llm_judge_config_id: Id | None = None
    judge_prompt: Text = Field(default="", max_length=20_000)


class BatchOut(Schema):
    id: int
    name: str
    bank_id: int
    status: str
    steps_done: int
    steps_total: int
    percent: int
    error: str
    llm_judge_config_id: int | None
    debate_ids: list[int]
    created_at: datetime
    finished_at: datetime | None


class GroupOut(Schema):
    name: str
    accuracy: ShareOut
    mean_judge_turns: float
    mean_judge_score: float
    ece: float
    brier: float
    honest: ShareOut | None
    dishonest: ShareOut | None


class RatingOut(Schema):
    name: str
    score: float
    low: float
    high: float
    games: int


class MeanOut(Schema):
    mean: float
    low: float  # percentile-bootstrap 95 % interval over markets
    high: float
    n: int


class MarketStepOut(Schema):
    step: int  # 0: p_0, before any argument
    cross_entropy: MeanOut | None
    move: MeanOut | None


class ProtocolRowOut(Schema):
    name: str
    accuracy: ShareOut
    brier: float


class MarketOut(Schema):
    markets: int
    questions: int
    initial_accuracy: ShareOut
    initial_brier: float
    by_step: list[MarketStepOut]
    steps_to_stop: MeanOut
    converged: ShareOut
    probability_methods: dict[str, int]
    same_questions: list[ProtocolRowOut]
    method: str


class AnalyticsOut(Schema):
    verdicts: int
    calibration_binning: str
    groups: list[GroupOut]
    llm_human_agreement: ShareOut
    ratings: list[RatingOut]
    market: MarketOut | None  # markets among the filtered verdicts (Hubinger 2020)


class AnalyticsQuery(Body):
    group_by: Literal["setting", "judge", "protocol", "model", "source"] = "setting"
    date_from: IsoDate | None = None
    date_to: IsoDate | None = None
    protocol: Literal["", "debate", "consultancy", "market"] = ""
    judge_kind: Literal["", "human", "offline", "llm"] = ""
    source: Literal["", "arbiter", "nyu-2023"] = ""
    batch: Id | None = None
    paper_only: bool = False


# --- debates ----------------------------------------------------------------------------------
def _summary(debate: Debate) -> DebateSummary:
    return DebateSummary(
        id=debate.pk, name=debate.room_name or f"arbiter-{debate.pk}", source=debate.source,
        protocol=debate.protocol, human_debaters=debate.human_debaters, status=debate.status,
        question=debate.question, correct_side=debate.correct_side, batch_id=debate.batch_id,
        created_at=debate.created_at,
        # The API's own URLconf (config/api_urls.py) has no pages: the page's is the site's.
        url=reverse("debate:detail", args=[debate.pk], urlconf=settings.ROOT_URLCONF),
    )  # fmt: skip


@router.get("/", response={200: DebatePage} | errors(403), summary="List debates")
def debate_list(request: HttpRequest, filters: Query[DebateListQuery]) -> DebatePage:
    rows = debates_for_research_export(
        source=filters.source, protocol=filters.protocol, batch=filters.batch
    ).order_by("-created_at", "-pk")
    page = rows[filters.offset : filters.offset + filters.limit]
    return DebatePage(count=rows.count(), results=[_summary(d) for d in page])


@router.get(
    "/{int:debate_id}", response={200: DebateRecord} | errors(403, 404),
    summary="A debate in the export schema: transcript, quotes, judge turns, verdicts",
)  # fmt: skip
def debate_get(request: HttpRequest, debate_id: Id) -> DebateRecord:
    debate = debates_for_export(Debate.objects.filter(pk=debate_id)).first()
    if debate is None:
        raise HttpError(404, "No such debate.")
    return debate_record(debate)


@router.post("/", response={201: DebateSummary} | errors(403, 404), summary="Create a live debate")
def debate_post(request: HttpRequest, body: DebateIn) -> Status:
    user = api_user(request)
    judge = User.objects.filter(username=body.judge_username, is_active=True).first()
    if judge is None or not user_has_role(judge, Role.ANNOTATOR):
        raise HttpError(404, "No such annotator to judge.")
    configs = ModelConfig.objects.in_bulk(
        [i for i in (body.debater_a_config_id, body.debater_b_config_id) if i]
    )
    if body.debater_a_config_id not in configs or (
        body.debater_b_config_id and body.debater_b_config_id not in configs
    ):
        raise HttpError(404, "No such model config.")
    debate = Debate(
        question=body.question, answer_a=body.answer_a, answer_b=body.answer_b,
        correct_side=Side(body.correct_side) if body.correct_side else "",
        passage=body.passage, protocol=Protocol(body.protocol), turn_order=body.turn_order,
        rounds_mode=body.rounds_mode, max_rounds=body.max_rounds,
        speech_char_limit=body.speech_char_limit, quote_char_limit=body.quote_char_limit,
        debater_a_config=configs[body.debater_a_config_id],
        debater_b_config=configs.get(body.debater_b_config_id or 0), judge=judge,
    )  # fmt: skip
    debate = debate_create(debate=debate, created_by=user)
    return Status(201, _summary(debate))


@router.post(
    "/import", response={200: DebateImportOut} | errors(403),
    summary="Import debates in the export schema (upserted by name), all or none",
)  # fmt: skip
def debate_import(request: HttpRequest, body: ImportIn) -> DebateImportOut:
    with transaction.atomic():
        imported = [(record_name(d), created) for d, created in records_upsert(body.records)]
    names = [name for name, _ in imported]
    created = list(dict.fromkeys(name for name, new in imported if new))
    updated = [name for name in dict.fromkeys(names) if name not in created]
    return DebateImportOut(names=names, created=created, updated=updated)


@router.get("/analytics/", response={200: AnalyticsOut} | errors(403), summary="Debate analytics")
def debate_analytics(request: HttpRequest, query: Query[AnalyticsQuery]) -> AnalyticsOut:
    assert query.group_by in GROUPINGS
    stats = analytics_compute(Filters(
        group_by=query.group_by, date_from=query.date_from, date_to=query.date_to,
        protocol=query.protocol, judge_kind=query.judge_kind, source=query.source,
        batch_id=query.batch, paper_only=query.paper_only,
    ))  # fmt: skip

    return AnalyticsOut(
        verdicts=stats.verdicts, calibration_binning=stats.binning,
        groups=[GroupOut(
            name=g.name, accuracy=share(g.accuracy), mean_judge_turns=g.mean_turns,
            mean_judge_score=g.mean_score, ece=g.ece, brier=g.brier,
            honest=share(g.honest) if g.honest else None,
            dishonest=share(g.dishonest) if g.dishonest else None,
        ) for g in stats.groups],
        llm_human_agreement=share(stats.agreement.same_answer),
        ratings=[RatingOut(name=r.name, score=r.score, low=r.low, high=r.high, games=r.games)
                 for r in stats.ratings],
        market=_market_out(stats.market) if stats.market else None,
    )  # fmt: skip


def share(value: Share) -> ShareOut:
    return ShareOut.of(value)


def _mean(value: MeanWithInterval | None) -> MeanOut | None:
    if value is None:
        return None
    return MeanOut(mean=value.mean, low=value.low, high=value.high, n=value.n)


def _market_out(market: MarketStats) -> MarketOut:
    stop = _mean(market.steps_to_stop)
    assert stop is not None
    return MarketOut(
        markets=market.markets, questions=market.questions,
        initial_accuracy=share(market.initial_accuracy), initial_brier=market.initial_brier,
        by_step=[MarketStepOut(step=s.step, cross_entropy=_mean(s.cross_entropy),
                               move=_mean(s.move)) for s in market.by_step],
        steps_to_stop=stop, converged=share(market.converged),
        probability_methods=dict(market.methods),
        same_questions=[ProtocolRowOut(name=r.name, accuracy=share(r.accuracy), brier=r.brier)
                        for r in market.same_questions],
        method=market.method,
    )  # fmt: skip


# --- batches ----------------------------------------------------------------------------------
def _batch_out(batch: DebateBatch) -> BatchOut:
    return BatchOut(
        id=batch.pk, name=batch.name, bank_id=batch.bank_id, status=batch.status,
        steps_done=batch.steps_done, steps_total=batch.steps_total, percent=batch.percent,
        error=batch.error, llm_judge_config_id=batch.llm_judge_config_id,
        debate_ids=list(batch.debates.order_by("pk").values_list("pk", flat=True)),
        created_at=batch.created_at, finished_at=batch.finished_at,
    )  # fmt: skip


class BatchListQuery(Body):
    limit: int = Field(default=50, ge=1, le=200)


@batches.get("/", response={200: list[BatchOut]} | errors(403), summary="List batches")
def batch_list(request: HttpRequest, query: Query[BatchListQuery]) -> list[BatchOut]:
    return [_batch_out(batch) for batch in DebateBatch.objects.order_by("-pk")[: query.limit]]


@batches.post(
    "/", response={201: BatchOut} | errors(403, 404), summary="Start a batch of AI debates"
)
def batch_post(request: HttpRequest, body: BatchIn) -> Status:
    user = api_user(request)
    bank = QuestionBank.objects.filter(pk=body.bank_id).first()
    if bank is None:
        raise HttpError(404, "No such question bank.")
    judge = None
    if body.llm_judge_config_id is not None:
        judge = ModelConfig.objects.filter(pk=body.llm_judge_config_id).first()
        if judge is None:
            raise HttpError(404, "No such LLM judge model config.")
    try:
        batch = batch_create(
            name=body.name, bank=bank, spec=body.spec, created_by=user,
            llm_judge_config=judge, judge_prompt=body.judge_prompt,
        )  # fmt: skip
    except ValidationError as error:
        raise HttpError(400, " ".join(error.messages)) from None
    return Status(201, _batch_out(batch))


@batches.get(
    "/{int:batch_id}",
    response={200: BatchOut} | errors(403, 404),
    summary="A batch and its progress",
)
def batch_get(request: HttpRequest, batch_id: Id) -> BatchOut:
    batch = DebateBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        raise HttpError(404, "No such batch.")
    return _batch_out(batch)


class TournamentEntryOut(Schema):
    config_id: int
    best_of_n: int  # candidates a speech, the debate reward model keeping one (1: no choice)
    name: str
    rating: float | None
    rating_low: float | None
    rating_high: float | None
    games: int
    self_play_accuracy: ShareOut


class TournamentOut(Schema):
    batch_id: int
    questions: int
    debates: int
    verdicts: int
    entries: list[TournamentEntryOut]
    trend_slope: float | None  # self-play judge accuracy per rating point
    trend_intercept: float | None
    rating_method: str
    accuracy_method: str
    trend_method: str


@batches.get(
    "/{int:batch_id}/tournament",
    response={200: TournamentOut} | errors(403, 404),
    summary="A cross-play tournament's ratings, self-play judge accuracy and trend",
)
def batch_tournament(request: HttpRequest, batch_id: Id) -> TournamentOut:
    batch = DebateBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        raise HttpError(404, "No such batch.")
    result = tournament_compute(batch)
    if result is None:
        raise HttpError(404, "This batch is not a tournament.")
    return TournamentOut(
        batch_id=batch.pk, questions=result.questions, debates=result.debates,
        verdicts=result.verdicts,
        entries=[
            TournamentEntryOut(
                config_id=e.config_id, best_of_n=e.best_of_n, name=e.name, rating=e.rating,
                rating_low=e.low,
                rating_high=e.high, games=e.games,
                self_play_accuracy=share(e.self_play),
            )
            for e in result.entries
        ],
        trend_slope=result.trend.slope if result.trend else None,
        trend_intercept=result.trend.intercept if result.trend else None,
        rating_method=result.rating_method, accuracy_method=result.accuracy_method,
        trend_method=result.trend_method,
    )  # fmt: skip


router.add_router("/batches", batches)
