"""Debates in and out as DebateRecords: upsert one (by its room name), read one back.

Export and import go through the same record, so exporting, importing and exporting again
gives the same bytes. Every write happens in one transaction per record: a record that
fails leaves nothing behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from django.db import transaction
from django.db.models import Prefetch, QuerySet

from debate.auto_judge import debate_texts
from debate.models import (
    Debate,
    JudgeAction,
    JudgeTurn,
    Market,
    MarketCandidate,
    MarketStep,
    Protocol,
    Side,
    Source,
    Speech,
    SpeechStatus,
    Verdict,
)
from debate.quotes import Quote, quotes_recheck
from debate.records import (
    DebateRecord,
    RecordJudgeTurn,
    RecordMarket,
    RecordMarketCandidate,
    RecordMarketStep,
    RecordQuote,
    RecordRules,
    RecordSetting,
    RecordSpeech,
    RecordVerdict,
    RoomExtras,
    distribution_of,
    percent_a,
)
from llm.models import ModelConfig
from rewards.auto_judge import debate_scores_forget

_NATIVE_NAME = re.compile(r"^arbiter-(\d{1,18})$")  # an id that fits a bigint


def record_name(debate: Debate) -> str:
    return debate.room_name or f"arbiter-{debate.pk}"


def _existing(name: str) -> Debate | None:
    debate = Debate.objects.select_for_update().filter(room_name=name).first()
    if debate is None and (match := _NATIVE_NAME.match(name)):
        debate = (
            Debate.objects.select_for_update()
            .filter(pk=int(match.group(1)), room_name__isnull=True)
            .first()
        )
    return debate


def _config(name: str | None, cache: dict[str, ModelConfig | None]) -> ModelConfig | None:
    if not name:
        return None
    if name not in cache:
        cache[name] = ModelConfig.objects.filter(name=name).first()
    return cache[name]


def debate_record_upsert(
    *, record: DebateRecord, configs: dict[str, ModelConfig | None] | None = None
) -> tuple[Debate, bool]:
    """Create or update the debate named `record.name`, in one transaction (the debate row
    locked); True if it was created. Concurrent imports of one new name: the unique room name
    decides, and the others update the row the first created (get-or-create under the
    constraint). A record without a transcript (a metadata line) updates the setting, outcome
    and verdicts and keeps any transcript a full room brought before. A transcript that
    changes what a side said drops the automatic judge's scores of it, to be scored again.
    Every quote is verified again against the record's passage (debate.quotes)."""
    configs = {} if configs is None else configs
    with transaction.atomic():
        debate = _existing(record.name)
        created = False
        if debate is None:
            # A debate from another Arbiter keeps its name ("arbiter-<its id>") as room name.
            # get_or_create inserts in a savepoint: a concurrent insert of the same name makes
            # it wait, then read (and lock) the row that one committed.
            debate, created = Debate.objects.select_for_update().get_or_create(
                room_name=record.name,
                defaults={"question": record.question, "has_transcript": record.has_transcript},
            )
        keep_transcript = not created and debate.has_transcript and not record.has_transcript
        # What the automatic judge scored; a transcript that changes is scored again.
        texts_before = debate_texts([debate.pk]) if not created and not keep_transcript else None
        correct = record.correct_answer_index
        debate.source = record.source
        debate.protocol = (
            Protocol.MARKET if record.market is not None
            else Protocol.DEBATE if record.setting.is_debate else Protocol.CONSULTANCY
        )  # fmt: skip
        debate.human_debaters = record.setting.is_human
        if record.included_in_paper is not None:
            debate.included_in_paper = record.included_in_paper
        debate.correct_side = "" if correct is None else (Side.A, Side.B)[correct]
        debate.consultant_side = record.consultant or ""
        debate.status = record.status
        debate.debater_a_name = record.roles.get("Debater A", "")
        debate.debater_b_name = record.roles.get("Debater B", "")
        debate.judge_name = record.roles.get("Judge", "")
        debate.story_title = record.story_title
        debate.created_at = record.created_at
        if not keep_transcript:
            debate.question = record.question
            debate.answer_a, debate.answer_b = record.answers
            debate.passage = record.source_material
            rules = record.rules
            debate.turn_order = rules.turn_order
            debate.rounds_mode = rules.rounds_mode
            debate.max_rounds = rules.max_rounds
            debate.speech_char_limit = rules.speech_char_limit
            debate.quote_char_limit = rules.quote_char_limit
            debate.current_round = record.rounds_held
            debate.has_transcript = record.has_transcript
            debate.extras = record.extras.model_dump(mode="json", exclude_defaults=True)
            debate.debater_a_config = _config(record.models.get("Debater A"), configs)
            debate.debater_b_config = _config(record.models.get("Debater B"), configs)
        debate.save()
        if not keep_transcript:
            debate.speeches.all().delete()
            debate.judge_turns.all().delete()
            Speech.objects.bulk_create(_speech_row(debate, record, s) for s in record.speeches)
            JudgeTurn.objects.bulk_create(_turn_row(debate, turn) for turn in record.judge_turns)
            if texts_before is not None and texts_before != debate_texts([debate.pk]):
                debate_scores_forget(debate_id=debate.pk)
            Market.objects.filter(debate=debate).delete()
            if record.market is not None:
                _market_rows(debate, record.market, configs)
        debate.verdicts.all().delete()
        Verdict.objects.bulk_create(
            Verdict(
                debate=debate, kind=verdict.kind, judge_name=verdict.judge,
                judge_config=_config(verdict.model, configs),
                probability_a=percent_a(verdict.distribution),
                judge_turns=verdict.judge_turns, rationale=verdict.rationale,
            )
            for verdict in record.verdicts
        )  # fmt: skip
    return debate, created


def _speech_row(debate: Debate, record: DebateRecord, speech: RecordSpeech) -> Speech:
    # Arbiter's rules count the quote budget as live; NYU's app kept its own (quotes_recheck).
    limit = record.rules.quote_char_limit if record.source == Source.ARBITER else None
    quotes = quotes_recheck(
        speech.text, passage=record.source_material, quote_char_limit=limit,
        given=[Quote(**quote.model_dump()) for quote in speech.quotes],
    )  # fmt: skip
    return Speech(
        debate=debate, round=speech.round, side=speech.side, status=SpeechStatus.DONE,
        text=speech.text, truncated=speech.truncated,
        quotes=[quote.as_json() for quote in quotes],
    )  # fmt: skip


def _market_rows(
    debate: Debate, record: RecordMarket, configs: dict[str, ModelConfig | None]
) -> None:
    """The market's rows from its record, each step tied to its kept argument (the speech of
    round `step`). M's config by name, none if no config here has that name."""
    market = Market.objects.create(
        debate=debate, predictor_config=_config(record.predictor, configs),
        predictor_name=record.predictor, epsilon=record.epsilon,
        patience=record.patience, candidates=record.candidates,
        initial_probability_a=record.p_0, initial_method=record.p_0_method,
        stop_reason=record.stop_reason,
    )  # fmt: skip
    speeches = {speech.round: speech for speech in debate.speeches.filter(side=Side.A)}
    for step in record.steps:
        row = MarketStep.objects.create(
            market=market, step=step.step, probability_before=step.p_before,
            probability_after=step.p_after, method=step.method, speech=speeches.get(step.step),
        )  # fmt: skip
        MarketCandidate.objects.bulk_create(
            MarketCandidate(
                step=row, index=c.index, argued_side=c.argued_side, text=c.text,
                predicted_probability_a=c.predicted_p_a, option_mass=c.option_mass, kept=c.kept,
            )
            for c in step.candidates
        )  # fmt: skip


def _market_record(debate: Debate) -> RecordMarket | None:
    market = getattr(debate, "market", None) if debate.protocol == Protocol.MARKET else None
    if market is None:
        return None
    return RecordMarket(
        predictor=market.predictor_name, epsilon=market.epsilon,
        patience=market.patience, candidates=market.candidates,
        p_0=market.initial_probability_a, p_0_method=market.initial_method,  # type: ignore[arg-type]
        stop_reason=market.stop_reason,  # type: ignore[arg-type]
        steps=[
            RecordMarketStep(
                step=step.step, p_before=step.probability_before,
                p_after=step.probability_after, method=step.method,  # type: ignore[arg-type]
                candidates=[
                    RecordMarketCandidate(
                        index=c.index, argued_side=c.argued_side,  # type: ignore[arg-type]
                        text=c.text, predicted_p_a=c.predicted_probability_a,
                        option_mass=c.option_mass, kept=c.kept,
                    )
                    for c in step.candidates.all()
                ],
            )
            for step in market.steps.all()
        ],
    )  # fmt: skip


def _turn_row(debate: Debate, turn: RecordJudgeTurn) -> JudgeTurn:
    return JudgeTurn(
        debate=debate, round=turn.round, probability_a=percent_a(turn.distribution),
        message=turn.feedback,
        action=JudgeAction.END if turn.end_debate else JudgeAction.CONTINUE,
    )  # fmt: skip


def debates_for_export(debates: QuerySet[Debate]) -> QuerySet[Debate]:
    return debates.select_related("debater_a_config", "debater_b_config").prefetch_related(
        Prefetch("speeches", queryset=Speech.objects.order_by("round", "side")),
        Prefetch("judge_turns", queryset=JudgeTurn.objects.order_by("round")),
        Prefetch(
            "verdicts",
            queryset=Verdict.objects.select_related("judge_config").order_by("kind", "judge_name"),
        ),
        "market__predictor_config",
        Prefetch("market__steps", queryset=MarketStep.objects.order_by("step")),
        Prefetch("market__steps__candidates", queryset=MarketCandidate.objects.order_by("index")),
    )


def debate_record(debate: Debate) -> DebateRecord:
    """A debate as an export record (prefetch with debates_for_export)."""
    a_name = debate.debater_a_name or (
        debate.debater_a_config.name if debate.debater_a_config else ""
    )
    b_name = debate.debater_b_name or (
        debate.debater_b_config.name if debate.debater_b_config else ""
    )
    consultancy = debate.protocol != Protocol.DEBATE  # a market has one arguer, too
    roles: dict[str, str] = {}
    if a_name and not (consultancy and debate.consultant_side == Side.B):
        roles["Debater A"] = a_name
    if b_name and not (consultancy and debate.consultant_side == Side.A):
        roles["Debater B"] = b_name
    judge = debate.judge_name or (debate.judge.username if debate.judge_id and debate.judge else "")
    if judge:
        roles["Judge"] = judge
    models = {}
    if debate.debater_a_config:
        models["Debater A"] = debate.debater_a_config.name
    if debate.debater_b_config:
        models["Debater B"] = debate.debater_b_config.name
    speakers = {Side.A: a_name or "Debater A", Side.B: b_name or "Debater B"}
    speeches = [
        RecordSpeech(
            round=speech.round, side=speech.side, speaker=speakers[Side(speech.side)],  # type: ignore[arg-type]
            text=speech.text, truncated=speech.truncated,
            quotes=[RecordQuote(**quote) for quote in speech.quotes],
        )
        for speech in debate.speeches.all()
        if speech.status == SpeechStatus.DONE
    ]  # fmt: skip
    turns = [
        RecordJudgeTurn(
            round=turn.round, distribution=distribution_of(turn.probability_a),
            feedback=turn.message, end_debate=turn.action == JudgeAction.END,
        )
        for turn in debate.judge_turns.all()
    ]  # fmt: skip
    verdicts = [
        RecordVerdict(
            kind=verdict.kind, judge=verdict.judge_name,  # type: ignore[arg-type]
            distribution=distribution_of(verdict.probability_a),
            judge_turns=verdict.judge_turns, rationale=verdict.rationale,
            model=verdict.judge_config.name if verdict.judge_config else None,
        )
        for verdict in debate.verdicts.all()
    ]  # fmt: skip
    correct = {Side.A: 0, Side.B: 1}.get(debate.correct_side)  # type: ignore[call-overload]
    return DebateRecord(
        name=record_name(debate), source=debate.source,  # type: ignore[arg-type]
        setting=RecordSetting(is_human=debate.human_debaters, is_debate=not consultancy),
        included_in_paper=debate.included_in_paper, story_title=debate.story_title,
        question=debate.question, answers=[debate.answer_a, debate.answer_b],
        correct_answer_index=correct, source_material=debate.passage,
        rules=RecordRules(
            turn_order=debate.turn_order, rounds_mode=debate.rounds_mode,  # type: ignore[arg-type]
            max_rounds=debate.max_rounds, speech_char_limit=debate.speech_char_limit,
            quote_char_limit=debate.quote_char_limit,
        ),
        roles=roles, models=models,  # type: ignore[arg-type]
        consultant=debate.consultant_side or None,  # type: ignore[arg-type]
        status=debate.status, created_at=debate.created_at,  # type: ignore[arg-type]
        has_transcript=debate.has_transcript, rounds_held=debate.current_round,
        speeches=speeches, judge_turns=turns, verdicts=verdicts,
        extras=RoomExtras.model_validate(debate.extras), market=_market_record(debate),
    )  # fmt: skip


def debates_export_lines(debates: QuerySet[Debate], *, chunk: int = 200) -> Iterator[str]:
    """JSONL, one record a line, read in chunks so a large export streams in bounded memory."""
    ids = list(debates.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), chunk):
        rows = debates_for_export(Debate.objects.filter(pk__in=ids[start : start + chunk]))
        for debate in rows.order_by("pk"):
            yield debate_record(debate).model_dump_json() + "\n"


def records_upsert(records: Iterable[DebateRecord]) -> list[tuple[Debate, bool]]:
    """Each record upserted (debate_record_upsert): the debate, and whether it was created."""
    configs: dict[str, ModelConfig | None] = {}
    return [debate_record_upsert(record=record, configs=configs) for record in records]
