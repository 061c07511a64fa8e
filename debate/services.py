"""Every write of a debate: setup, the judge's turns, speeches, the judgment.

Debate rows are locked (`select_for_update`) for every state transition, so a double-clicked
button or two browser tabs cannot advance a debate twice. Events reach browsers after commit.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotations.models import Item, Queue
from annotations.services import NewItem, queue_items_create
from core.streams import stream_send
from debate.kinds import DebatePayload, DebateTurn
from debate.models import (
    Debate,
    DebateStatus,
    JudgeAction,
    JudgeTurn,
    Judgment,
    Protocol,
    ProtocolPrompt,
    RoundsMode,
    Side,
    Speech,
    SpeechStatus,
    TurnOrder,
    Verdict,
    VerdictKind,
)
from debate.prompting import TranscriptEntry, debater_messages
from llm.models import ModelConfig

# Roughly 3 characters a token for English: enough tokens to reach the limit, not far past it.
CHARS_PER_TOKEN = 3

logger = logging.getLogger(__name__)


def debate_group_name(debate_id: int) -> str:
    return f"debate-{debate_id}"


def _broadcast_changed(debate_id: int) -> None:
    transaction.on_commit(
        lambda: stream_send(debate_group_name(debate_id), {"type": "debate.changed"})
    )


def _locked(debate_id: int) -> Debate:
    return Debate.objects.select_for_update().get(pk=debate_id)


def best_of_n_check(*, best_of_n: int, configs: list[ModelConfig]) -> None:
    """Best-of-n needs a reward model to choose with (debate.selectors.best_of_n_reward_model)
    and debaters that sample: greedy decoding gives n copies of one speech."""
    from debate.selectors import best_of_n_reward_model

    if best_of_n <= 1:
        return
    if best_of_n_reward_model() is None:
        raise ValidationError(
            "Best-of-n needs an active reward model trained on a debate-judgment queue, and "
            "none is active: train one under Reward models, or choose 1."
        )
    greedy = [config.name for config in configs if config.temperature == 0]
    if greedy:
        raise ValidationError(
            f"Best-of-n needs sampling, but {', '.join(greedy)} has temperature 0: its "
            "candidates would all be the same speech."
        )


def debate_create(*, debate: Debate, created_by: User) -> Debate:
    """Save a debate a DebateForm validated. Consultancy draws the consultant's side here.
    ValidationError for a best-of-n that cannot choose (best_of_n_check)."""
    best_of_n_check(
        best_of_n=debate.best_of_n,
        configs=[c for c in (debate.debater_a_config, debate.debater_b_config) if c],
    )
    if debate.protocol == Protocol.CONSULTANCY:
        debate.consultant_side = secrets.choice([Side.A, Side.B])
        debate.debater_b_config = None
    elif debate.debater_b_config is None:
        debate.debater_b_config = debate.debater_a_config  # two instances of one config
    debate.created_by = created_by
    debate.status = DebateStatus.WAITING_FOR_PRIOR
    debate.save()
    return debate


def protocol_prompt_save(*, prompt: ProtocolPrompt) -> ProtocolPrompt:
    """Save prompts a ProtocolPromptForm validated; later speeches use them."""
    prompt.save()
    return prompt


def debate_prior_submit(
    *, debate_id: int, judge: User, probability_a: int, message: str = ""
) -> Debate:
    """The judge's prior opens the debate: round 1 starts. The message (a question, or what
    the judge expects) is in every debater's transcript from round 1 on."""
    with transaction.atomic():
        _check_probability(probability_a)
        debate = _locked(debate_id)
        _check_judge(debate, judge, DebateStatus.WAITING_FOR_PRIOR)
        JudgeTurn.objects.create(
            debate=debate, round=0, probability_a=probability_a, message=message,
            action=JudgeAction.CONTINUE,
        )  # fmt: skip
        debate.judge_started_at = timezone.now()
        _round_start(debate, 1)
    return debate


def judge_turn_submit(
    *, debate_id: int, judge: User, probability_a: int, action: str, message: str = "",
    rationale: str = "",
) -> Debate:  # fmt: skip
    """After a round: continue (the message goes to the debaters) or end and judge."""
    with transaction.atomic():
        _check_probability(probability_a)
        if action not in JudgeAction.values:
            raise ValidationError(f"Unknown action {action!r}.")
        debate = _locked(debate_id)
        _check_judge(debate, judge, DebateStatus.AWAITING_JUDGE)
        if action == JudgeAction.CONTINUE and debate.last_round:
            raise ValidationError("This was the last round: end the debate and give a judgment.")
        if (
            action == JudgeAction.END
            and debate.rounds_mode == RoundsMode.FIXED
            and not debate.last_round
        ):
            raise ValidationError(f"This debate runs all {debate.max_rounds} rounds.")
        JudgeTurn.objects.create(
            debate=debate, round=debate.current_round, probability_a=probability_a,
            message=message, action=action,
        )  # fmt: skip
        if action == JudgeAction.CONTINUE:
            _round_start(debate, debate.current_round + 1)
        else:
            judgment_submit(debate=debate, judge=judge, probability_a=probability_a,
                            rationale=rationale)  # fmt: skip
    return debate


def judgment_submit(*, debate: Debate, judge: User, probability_a: int, rationale: str) -> Judgment:
    """The only writer of judgments. Call inside a transaction holding the debate's row lock."""
    if not rationale.strip():
        raise ValidationError("A rationale is required to end the debate.")
    judge_turns = JudgeTurn.objects.filter(
        debate=debate, round__gte=1, action=JudgeAction.CONTINUE
    ).count()
    started = debate.judge_started_at or debate.created_at
    judgment = Judgment.objects.create(
        debate=debate, judge=judge, probability_a=probability_a, rationale=rationale.strip(),
        judge_turns=judge_turns, time_spent_s=(timezone.now() - started).total_seconds(),
    )  # fmt: skip
    # The same final answer as a verdict, the row analytics and exports read for every judge.
    Verdict.objects.update_or_create(
        debate=debate, kind=VerdictKind.HUMAN, judge_name=judge.get_username(),
        defaults={"probability_a": probability_a, "judge_turns": judge_turns,
                  "rationale": judgment.rationale},
    )  # fmt: skip
    debate.status = DebateStatus.JUDGED
    debate.save(update_fields=["status"])
    _broadcast_changed(debate.pk)
    return judgment


def _check_probability(probability_a: int) -> None:
    if not 1 <= probability_a <= 99:
        raise ValidationError(f"Probabilities run from 1 to 99%, not {probability_a}%.")


def _check_judge(debate: Debate, judge: User, status: str) -> None:
    if debate.judge_id != judge.pk:
        raise ValidationError("Only the assigned judge can do that.")
    if debate.status != status:
        raise ValidationError(
            f"The debate is {debate.get_status_display()}; that step is not open now."
        )


def _round_start(debate: Debate, round_number: int) -> None:
    debate.current_round = round_number
    debate.status = DebateStatus.GENERATING
    debate.save(update_fields=["current_round", "status", "judge_started_at"])
    speeches = [Speech.objects.create(debate=debate, round=round_number, side=side)
                for side in debate.sides]  # fmt: skip
    # Simultaneous: every side speaks at once. Sequential: the next starts when one finishes.
    # Simultaneous speeches go as one task: one batched generation (debate.generation).
    starting = speeches if debate.turn_order == TurnOrder.SIMULTANEOUS else speeches[:1]
    _enqueue([speech.pk for speech in starting])
    _broadcast_changed(debate.pk)


def _enqueue(speech_ids: list[int]) -> None:
    from debate.tasks import speeches_generate_task

    transaction.on_commit(lambda: speeches_generate_task.delay(speech_ids))


# A worker saves a streaming speech's text (and so its heartbeat) several times a second; one
# that has said nothing for this long is taken to be dead: a model loads in well under it.
SPEECH_STALE_AFTER = timedelta(minutes=2)


class SpeechSuperseded(Exception):
    """This worker's attempt at a speech was given up on and the speech started again."""


def speeches_reset(speeches: QuerySet[Speech]) -> int:
    """In the caller's transaction: back to the queue with no text, so none is duplicated."""
    return speeches.update(
        status=SpeechStatus.QUEUED, text="", quotes=[], error="", truncated=False,
        finish_reason="", completion_tokens=None, started_at=None, generating_at=None,
    )  # fmt: skip


def _speech_restart(speech: Speech) -> None:
    speeches_reset(Speech.objects.filter(pk=speech.pk))
    _enqueue([speech.pk])
    _broadcast_changed(speech.debate_id)


def speeches_stale(*, now: datetime | None = None) -> QuerySet[Speech]:
    """Streaming speeches whose worker has been silent for SPEECH_STALE_AFTER (killed
    mid-speech, or its machine gone): the sweeper starts them again, and Retry may."""
    cutoff = (now or timezone.now()) - SPEECH_STALE_AFTER
    # A batch's speeches are its own run's to restart (debate.research.batches): its batched
    # calls heartbeat per chunk, not per token.
    return Speech.objects.filter(
        status=SpeechStatus.STREAMING, heartbeat_at__lt=cutoff, debate__batch__isnull=True
    )


def speech_retry(*, speech_id: int) -> Speech:
    """Start a failed (or stale: see speeches_stale) speech again from nothing, so no text is
    duplicated. A speech a worker is still writing is refused: a retry would start a second
    generation of it. ValidationError says why."""
    with transaction.atomic():
        speech = Speech.objects.select_for_update().get(pk=speech_id)
        if (
            speech.status != SpeechStatus.FAILED
            and not speeches_stale().filter(pk=speech.pk).exists()
        ):
            raise ValidationError(_speech_retry_refusal(speech))
        _speech_restart(speech)
    speech.refresh_from_db()
    return speech


def _speech_retry_refusal(speech: Speech) -> str:
    minutes = int(SPEECH_STALE_AFTER.total_seconds() // 60)
    rule = (
        f"Only a failed speech, or one whose worker has been silent for {minutes} minutes, "
        "can be retried"
    )
    if speech.status == SpeechStatus.STREAMING:
        if speech.debate.batch_id is not None:
            return f"{rule}: this one belongs to a batch, whose run starts its speeches again."
        beat = speech.heartbeat_at or speech.created_at
        ago = max(0, int((timezone.now() - beat).total_seconds()))
        return (
            f"{rule}: a worker is writing this one now (it last wrote {ago} s ago), and a "
            "retry would start a second generation of it."
        )
    if speech.status == SpeechStatus.QUEUED:
        return f"{rule}: this one is queued, and a worker will start it."
    return f"{rule}: this one is {speech.get_status_display().lower()}."


def speeches_requeue_stale(*, now: datetime | None = None) -> int:
    """Start again every stale speech (speeches_stale); returns how many. Each is locked and
    checked again, so two runs at once restart a speech once. Run by beat every minute."""
    restarted = 0
    stale = speeches_stale(now=now)
    for speech_id in list(stale.values_list("pk", flat=True)):
        with transaction.atomic():
            speech = stale.select_for_update().filter(pk=speech_id).first()
            if speech is not None:
                _speech_restart(speech)
                restarted += 1
    return restarted


def _speech_write(speech_id: int, attempt: int, **fields: Any) -> None:
    """Update a speech this worker still streams, with a heartbeat; else SpeechSuperseded."""
    if not Speech.objects.filter(
        pk=speech_id, attempt=attempt, status=SpeechStatus.STREAMING
    ).update(heartbeat_at=timezone.now(), **fields):
        raise SpeechSuperseded(f"speech {speech_id} is no longer on attempt {attempt}")


def _round_advance(debate_id: int) -> None:
    """A speech finished: start the next speaker (sequential) or hand over to the judge."""
    debate = _locked(debate_id)
    speeches = list(debate.speeches.filter(round=debate.current_round))
    if all(speech.status == SpeechStatus.DONE for speech in speeches):
        debate.status = DebateStatus.AWAITING_JUDGE
        debate.save(update_fields=["status"])
        return
    busy = any(speech.status == SpeechStatus.STREAMING for speech in speeches)
    waiting = [speech for speech in speeches if speech.status == SpeechStatus.QUEUED]
    if debate.turn_order == TurnOrder.SEQUENTIAL and waiting and not busy:
        _enqueue([waiting[0].pk])


def _speech_prompt(speech: Speech) -> list[Any]:
    debate = speech.debate
    prompts = ProtocolPrompt.objects.get(protocol=debate.protocol)
    other = Side.B if speech.side == Side.A else Side.A
    values: dict[str, object] = {
        "question": debate.question, "answer_a": debate.answer_a, "answer_b": debate.answer_b,
        "my_answer": debate.answer(speech.side), "other_answer": debate.answer(other),
        "passage": debate.passage or "(no passage)",
        "speech_char_limit": debate.speech_char_limit,
        "quote_char_limit": debate.quote_char_limit,
        "round": speech.round, "max_rounds": debate.max_rounds,
    }  # fmt: skip
    return debater_messages(
        system_template=prompts.debater_system,
        turn_template=prompts.debater_turn,
        values=values,
        transcript=debate_transcript(debate, before=speech),
    )


def debate_transcript(debate: Debate, *, before: Speech | None) -> list[TranscriptEntry]:
    """What a debater may see before its speech: earlier rounds, the judge's messages (round
    0's came with the prior), and (sequential order only) the speeches already given this
    round. `before=None`: the whole finished transcript."""
    entries: list[TranscriptEntry] = []
    messages = {turn.round: turn.message for turn in debate.judge_turns.all() if turn.message}
    speeches = [s for s in debate.speeches.all() if s.status == SpeechStatus.DONE]
    speeches.sort(key=lambda speech: (speech.round, speech.pk))
    last_round = before.round if before else debate.current_round
    for round_number in range(last_round + 1):
        for speech in speeches:
            if speech.round != round_number or (before and speech.pk == before.pk):
                continue
            same_round = before is not None and speech.round == before.round
            if same_round and debate.turn_order == TurnOrder.SIMULTANEOUS:
                continue
            entries.append(TranscriptEntry(round_number, _speaker(debate, speech), speech.text))
        if (before is None or round_number < before.round) and messages.get(round_number):
            entries.append(TranscriptEntry(round_number, "Judge", messages[round_number]))
    return entries


def _speaker(debate: Debate, speech: Speech) -> str:
    if debate.protocol == Protocol.CONSULTANCY:
        return "Consultant"
    return f"Debater {speech.side.upper()}"


def debates_to_queue(*, queue: Queue, debates: QuerySet[Debate] | None = None) -> int:
    """Add every judged debate (of `debates`, default all) not yet in `queue` as a transcript
    item ("which debater argued better?"); returns how many. The queue must take
    debate-judgment items."""
    present = set(
        Item.objects.filter(queue=queue, external_id__startswith="debate-").values_list(
            "external_id", flat=True
        )
    )
    items = []
    judged = (
        (Debate.objects.all() if debates is None else debates)
        .filter(status__in=[DebateStatus.JUDGED, DebateStatus.FINISHED], has_transcript=True)
        .order_by("pk")
    )
    for debate in judged.prefetch_related("speeches", "judge_turns"):
        if f"debate-{debate.pk}" in present:
            continue
        turns = [
            DebateTurn(speaker=entry.speaker, text=entry.text)
            for entry in debate_transcript(debate, before=None)
        ]
        if not turns:
            continue
        payload = DebatePayload(
            question=debate.question, answer_a=debate.answer_a, answer_b=debate.answer_b,
            turns=turns, source_id=f"debate:{debate.pk}",
        )  # fmt: skip
        items.append(NewItem(payload=payload, external_id=f"debate-{debate.pk}"))
    if not items:
        return 0
    return queue_items_create(queue=queue, items=items, skip_existing=True)
