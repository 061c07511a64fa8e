"""A speech's life, live or in a research batch, in one place: queued (speeches_enqueue),
claimed by a worker, prompted (speech_prompt, from what the debater may see:
debate_transcript), written as it streams (speech_write, speech_text_save), finished, and the
round advanced (round_advance); a speech whose worker died starts again
(speeches_requeue_stale, speech_restart). Debate services create speeches and call this
module; it calls no service back.

Generation (`speeches_generate`): each speech is claimed with a conditional UPDATE (a second
delivery finds nothing queued), then the claimed speeches are grouped by model config and
each group is generated in one batched call of up to GENERATION_BATCH speeches (times their
best-of-n candidates). Live debates stream every row token by token to its own speech card
(`stream_batch`); research batches, which nobody watches, take one `generate_batch`. So both
speeches of a simultaneous round are one generation, never two competing for the same cores.

What a card shows comes from here, stored on the row: queued (no worker has it), loading
model (`started_at`: claimed, the model loads), generating (`generating_at`; tokens counted
as the text is saved, with tokens/s in the stream's progress), then done with the finish
reason ("length": cut at the token cap).

Every write is fenced by the claim's attempt number: a worker given up on
(speeches_requeue_stale) writes nothing more for that speech, and the other rows of
its batch go on.

Best-of-n (`Debate.best_of_n_for(side)` > 1; a tournament may give its two sides different
n): the n candidates are rows of the same batch; they are not
streamed (the judge must only ever see the chosen one), the card shows progress only. The
active version of the best-of-n reward model (debate.selectors.best_of_n_reward_model) scores
(question, candidate) pairs and the highest becomes the speech; all are kept as
SpeechCandidate rows for researchers. With no active reward model the first candidate is kept
and its rewards stay empty, which the observer's card says.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from core.streams import TextStreamPublisher
from debate.events import debate_changed, debate_group_name
from debate.models import (
    Debate,
    DebateStatus,
    Protocol,
    ProtocolPrompt,
    Side,
    Speech,
    SpeechCandidate,
    SpeechStatus,
    TurnOrder,
)
from debate.prompting import TranscriptEntry, debater_messages
from debate.quotes import quotes_verify, speech_limit
from llm.backends.base import Backend, ChatMessage, GenerationError, GenerationParams, Usage
from llm.models import ModelConfig

logger = logging.getLogger(__name__)

# Rows per batched call: ~4× the throughput of one at a time on the bundled model.
GENERATION_BATCH = 8
# Roughly 3 characters a token for English: enough tokens to reach the limit, not far past it.
CHARS_PER_TOKEN = 3


# The task that generates speeches, sent by its registered name: debate.tasks imports this
# module, so this one does not import it back (debate.apps registers the task in every process).
SPEECHES_TASK = "debate.tasks.speeches_generate_task"


def speeches_enqueue(speech_ids: list[int]) -> None:
    """Once the caller's transaction commits, one task generates these speeches together."""
    from celery import current_app

    transaction.on_commit(lambda: current_app.tasks[SPEECHES_TASK].delay(speech_ids))


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


def speech_restart(speech: Speech) -> None:
    """In the caller's transaction, holding the speech's lock: from nothing, queued again."""
    speeches_reset(Speech.objects.filter(pk=speech.pk))
    speeches_enqueue([speech.pk])
    debate_changed(speech.debate_id)


def speeches_stale(*, now: datetime | None = None) -> QuerySet[Speech]:
    """Streaming speeches whose worker has been silent for SPEECH_STALE_AFTER (killed
    mid-speech, or its machine gone): the sweeper starts them again, and Retry may."""
    cutoff = (now or timezone.now()) - SPEECH_STALE_AFTER
    # A batch's speeches are its own run's to restart (debate.research.batches): its batched
    # calls heartbeat per chunk, not per token.
    return Speech.objects.filter(
        status=SpeechStatus.STREAMING, heartbeat_at__lt=cutoff, debate__batch__isnull=True
    )


def speeches_requeue_stale(*, now: datetime | None = None) -> int:
    """Start again every stale speech (speeches_stale); returns how many. Each is locked and
    checked again, so two runs at once restart a speech once. Run by beat every minute."""
    restarted = 0
    stale = speeches_stale(now=now)
    for speech_id in list(stale.values_list("pk", flat=True)):
        with transaction.atomic():
            speech = stale.select_for_update().filter(pk=speech_id).first()
            if speech is not None:
                speech_restart(speech)
                restarted += 1
    return restarted


def speech_write(speech_id: int, attempt: int, **fields: Any) -> None:
    """Update a speech this worker still streams, with a heartbeat; else SpeechSuperseded."""
    if not Speech.objects.filter(
        pk=speech_id, attempt=attempt, status=SpeechStatus.STREAMING
    ).update(heartbeat_at=timezone.now(), **fields):
        raise SpeechSuperseded(f"speech {speech_id} is no longer on attempt {attempt}")


def round_advance(debate_id: int) -> None:
    """A speech finished: start the next speaker (sequential) or hand over to the judge. In
    the caller's transaction; locks the debate's row."""
    debate = Debate.objects.select_for_update().get(pk=debate_id)
    speeches = list(debate.speeches.filter(round=debate.current_round))
    if all(speech.status == SpeechStatus.DONE for speech in speeches):
        debate.status = DebateStatus.AWAITING_JUDGE
        debate.save(update_fields=["status"])
        return
    busy = any(speech.status == SpeechStatus.STREAMING for speech in speeches)
    waiting = [speech for speech in speeches if speech.status == SpeechStatus.QUEUED]
    if debate.turn_order == TurnOrder.SEQUENTIAL and waiting and not busy:
        speeches_enqueue([waiting[0].pk])


def speech_prompt(speech: Speech) -> list[Any]:
    """The chat a debater's model receives for this speech: the protocol's prompts and what
    the debater may see so far (debate_transcript)."""
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
    if debate.protocol == Protocol.MARKET:
        return "Argument"
    return f"Debater {speech.side.upper()}"


@dataclass(frozen=True)
class _Claimed:
    speech: Speech
    attempt: int


@dataclass
class _Output:
    """One generated row (a speech, or one candidate of a best-of-n speech)."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: str = ""


def speeches_generate(
    *, speech_ids: Sequence[int], stream: bool = True, advance_rounds: bool = True,
    max_new_tokens: int | None = None, progress: Callable[[int], None] | None = None,
) -> None:  # fmt: skip
    """Generate the queued speeches among `speech_ids` (the rest are left alone), batched per
    model config. `advance_rounds`: each finished speech moves its debate on (the next
    sequential speaker, or the judge). `progress(n)` is told after every n speeches."""
    claimed = [item for item in map(_claim, speech_ids) if item is not None]
    for debate_id in {item.speech.debate_id for item in claimed}:
        debate_changed(debate_id)  # outside a transaction: sent at once
    by_config: dict[int, list[_Claimed]] = defaultdict(list)
    for item in claimed:
        by_config[item.speech.debate.config_for(item.speech.side).pk].append(item)
    for group in by_config.values():
        for start in range(0, len(group), GENERATION_BATCH):
            chunk = group[start : start + GENERATION_BATCH]
            _speeches_chunk(
                chunk, stream=stream, advance_rounds=advance_rounds, max_new_tokens=max_new_tokens
            )
            if progress is not None:
                progress(len(chunk))


def _claim(speech_id: int) -> _Claimed | None:
    now = timezone.now()
    if not Speech.objects.filter(pk=speech_id, status=SpeechStatus.QUEUED).update(
        status=SpeechStatus.STREAMING, attempt=F("attempt") + 1, heartbeat_at=now,
        started_at=now, generating_at=None, completion_tokens=None, finish_reason="",
    ):  # fmt: skip
        return None
    speech = Speech.objects.select_related(
        "debate", "debate__debater_a_config", "debate__debater_b_config"
    ).get(pk=speech_id)
    return _Claimed(speech, speech.attempt)


def _speeches_chunk(
    chunk: list[_Claimed], *, stream: bool, advance_rounds: bool, max_new_tokens: int | None
) -> None:
    from llm.generation import backend_for

    first = chunk[0].speech
    config = first.debate.config_for(first.side)
    budget = max(item.speech.debate.speech_char_limit for item in chunk) // CHARS_PER_TOKEN + 16
    params = config.generation_params(
        max_new_tokens=min(config.max_new_tokens, budget, max_new_tokens or budget)
    )
    rows = [item for item in chunk
            for _ in range(item.speech.debate.best_of_n_for(item.speech.side))]  # fmt: skip
    prompts = {item.speech.pk: speech_prompt(item.speech) for item in chunk}
    chats = [prompts[item.speech.pk] for item in rows]
    live = chunk
    try:
        backend = backend_for(config)
        live = _generating(chunk, _snapshot(config, params, batched=len(rows)))
        if stream:
            outputs, live = _streamed(backend, rows, chats, params, live)
        else:
            outputs = [_Output(c.text, c.usage, c.finish_reason)
                       for c in backend.generate_batch(chats, params=params)]  # fmt: skip
    except GenerationError as error:
        for item in live:
            _speech_finish(item, {"status": SpeechStatus.FAILED, "error": str(error)},
                           [], advance_rounds)  # fmt: skip
        return
    for item in live:
        candidates = [out for row, out in zip(rows, outputs, strict=True) if row is item]
        fields, kept = _chosen(item.speech.debate, candidates)
        _speech_finish(item, fields, kept, advance_rounds)


def _snapshot(config: ModelConfig, params: GenerationParams, *, batched: int) -> dict[str, Any]:
    return {"name": config.name, "backend": config.backend, "model": config.model,
            "system_prompt": config.system_prompt, "params": asdict(params),
            "batched": batched}  # fmt: skip


def _generating(chunk: list[_Claimed], snapshot: dict[str, Any]) -> list[_Claimed]:
    """The model is ready: each card says "generating". Returns the speeches still ours."""
    live = []
    for item in chunk:
        try:
            speech_write(item.speech.pk, item.attempt, generating_at=timezone.now(),
                          config_snapshot=snapshot)  # fmt: skip
        except SpeechSuperseded:
            logger.warning("%s: attempt %s was superseded", item.speech, item.attempt)
            continue
        live.append(item)
        debate_changed(item.speech.debate_id)
    return live


def _streamed(
    backend: Backend, rows: list[_Claimed], chats: list[list[ChatMessage]],
    params: GenerationParams, live: list[_Claimed],
) -> tuple[list[_Output], list[_Claimed]]:  # fmt: skip
    """One batched stream; each speech's row published to its own card (a best-of-n speech
    publishes progress only). Returns every row's output and the speeches still ours."""
    outputs = [_Output() for _ in rows]
    publishers = {
        item.speech.pk: TextStreamPublisher(
            group=debate_group_name(item.speech.debate_id),
            stream=item.speech.stream_key,
            save=_saver(item),
        )
        for item in live
    }
    shown = {item.speech.pk for item in live
             if item.speech.debate.best_of_n_for(item.speech.side) == 1}  # fmt: skip
    for row_chunk in backend.stream_batch(chats, params=params):
        item, chunk = rows[row_chunk.row], row_chunk.chunk
        output = outputs[row_chunk.row]
        output.text += chunk.text
        if chunk.usage is not None:
            output.usage, output.finish_reason = chunk.usage, chunk.finish_reason or ""
        publisher = publishers.get(item.speech.pk)
        if publisher is None:
            continue
        try:
            publisher.feed(chunk.text if item.speech.pk in shown else "", chunk.tokens)
        except SpeechSuperseded:
            logger.warning("%s: attempt %s was superseded", item.speech, item.attempt)
            del publishers[item.speech.pk]
            if not publishers:
                break  # nobody left to generate for: stop the model
    for speech_id, publisher in list(publishers.items()):
        try:
            publisher.flush()
        except SpeechSuperseded:
            del publishers[speech_id]
    return outputs, [item for item in live if item.speech.pk in publishers]


def _saver(item: _Claimed) -> Callable[[str, int], None]:
    return lambda text, tokens: speech_text_save(item.speech.pk, item.attempt, text, tokens)


def speech_text_save(speech_id: int, attempt: int, text: str, tokens: int) -> None:
    """A streaming speech's text so far (and its heartbeat): several times a second."""
    speech_write(speech_id, attempt, text=text, completion_tokens=tokens)


def _finished_text(debate: Debate, output: _Output) -> tuple[str, bool]:
    return speech_limit(output.text.strip(), char_limit=debate.speech_char_limit)


def _chosen(debate: Debate, outputs: list[_Output]) -> tuple[dict[str, Any], list[SpeechCandidate]]:
    """The speech's fields from its best candidate, and (best-of-n) every candidate."""
    texts = [_finished_text(debate, output) for output in outputs]
    candidates: list[SpeechCandidate] = []
    best = 0
    if len(outputs) > 1:
        rewards, version = _rewards(debate, [text for text, _ in texts])
        if rewards is not None:
            best = max(range(len(rewards)), key=rewards.__getitem__)
        candidates = [
            SpeechCandidate(
                index=index,
                text=text,
                truncated=truncated,
                finish_reason=output.finish_reason,
                completion_tokens=output.usage.completion_tokens if output.usage else None,
                reward=rewards[index] if rewards is not None else None,
                reward_version=version,
                chosen=index == best,
            )  # fmt: skip
            for index, ((text, truncated), output) in enumerate(zip(texts, outputs, strict=True))
        ]
    text, truncated = texts[best]
    quotes = quotes_verify(text, passage=debate.passage, quote_char_limit=debate.quote_char_limit)
    fields = {
        "status": SpeechStatus.DONE, "text": text, "truncated": truncated,
        "quotes": [quote.as_json() for quote in quotes],
        "finish_reason": outputs[best].finish_reason,
    } | Speech.usage_fields(outputs[best].usage)  # fmt: skip
    return fields, candidates


def _rewards(debate: Debate, texts: list[str]) -> tuple[list[float] | None, Any]:
    """Rewards of the candidates from the debate reward model's active version (the one
    rewards.auto_judge.auto_judge_version picks), with that version; (None, None) when none
    is active (creation refuses that, but one can be rolled back or retired since)."""
    from rewards.auto_judge import auto_judge_version
    from rewards.scoring import version_rewards
    from rewards.services import NoActiveVersion

    version = auto_judge_version()
    if version is None:
        return None, None
    try:
        pairs = [(debate.question, text) for text in texts]
        return version_rewards(version=version, pairs=pairs), version
    except NoActiveVersion:
        return None, None


def _speech_finish(
    item: _Claimed, fields: dict[str, Any], candidates: list[SpeechCandidate],
    advance_rounds: bool,
) -> None:  # fmt: skip
    try:
        with transaction.atomic():
            speech_write(item.speech.pk, item.attempt, finished_at=timezone.now(), **fields)
            if candidates:
                SpeechCandidate.objects.filter(speech_id=item.speech.pk).delete()
                for candidate in candidates:
                    candidate.speech_id = item.speech.pk
                SpeechCandidate.objects.bulk_create(candidates)
            if advance_rounds and fields["status"] == SpeechStatus.DONE:
                round_advance(item.speech.debate_id)
            debate_changed(item.speech.debate_id)
    except SpeechSuperseded:
        logger.warning("%s: attempt %s was superseded", item.speech, item.attempt)
