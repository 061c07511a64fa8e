"""The worker's side of every speech, live or in a research batch: `speeches_generate`.

Each speech is claimed with a conditional UPDATE (a second delivery finds nothing queued),
then the claimed speeches are grouped by model config and each group is generated in one
batched call of up to GENERATION_BATCH speeches (times their best-of-n candidates). Live
debates stream every row token by token to its own speech card (`stream_batch`); research
batches, which nobody watches, take one `generate_batch`. So both speeches of a simultaneous
round are one generation, never two competing for the same cores.

What a card shows comes from here, stored on the row: queued (no worker has it), loading
model (`started_at`: claimed, the model loads), generating (`generating_at`; tokens counted
as the text is saved, with tokens/s in the stream's progress), then done with the finish
reason ("length": cut at the token cap).

Every write is fenced by the claim's attempt number: a worker given up on
(services.speeches_requeue_stale) writes nothing more for that speech, and the other rows of
its batch go on.

Best-of-n (`Debate.best_of_n` > 1): the n candidates are rows of the same batch; they are not
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
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.streams import TextStreamPublisher
from debate.models import Debate, Speech, SpeechCandidate, SpeechStatus
from debate.quotes import quotes_verify, speech_limit
from debate.services import (
    CHARS_PER_TOKEN,
    SpeechSuperseded,
    _broadcast_changed,
    _round_advance,
    _speech_prompt,
    _speech_write,
    debate_group_name,
)
from llm.backends.base import Backend, ChatMessage, GenerationError, GenerationParams, Usage
from llm.models import ModelConfig

logger = logging.getLogger(__name__)

# Rows per batched call: ~4× the throughput of one at a time on the bundled model.
GENERATION_BATCH = 8


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
        _broadcast_changed(debate_id)  # outside a transaction: sent at once
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
    rows = [item for item in chunk for _ in range(item.speech.debate.best_of_n)]
    prompts = {item.speech.pk: _speech_prompt(item.speech) for item in chunk}
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
            _speech_write(item.speech.pk, item.attempt, generating_at=timezone.now(),
                          config_snapshot=snapshot)  # fmt: skip
        except SpeechSuperseded:
            logger.warning("%s: attempt %s was superseded", item.speech, item.attempt)
            continue
        live.append(item)
        _broadcast_changed(item.speech.debate_id)
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
    shown = {item.speech.pk for item in live if item.speech.debate.best_of_n == 1}
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
    return lambda text, tokens: _speech_text_save(item.speech.pk, item.attempt, text, tokens)


def _speech_text_save(speech_id: int, attempt: int, text: str, tokens: int) -> None:
    _speech_write(speech_id, attempt, text=text, completion_tokens=tokens)


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
            _speech_write(item.speech.pk, item.attempt, finished_at=timezone.now(), **fields)
            if candidates:
                SpeechCandidate.objects.filter(speech_id=item.speech.pk).delete()
                for candidate in candidates:
                    candidate.speech_id = item.speech.pk
                SpeechCandidate.objects.bulk_create(candidates)
            if advance_rounds and fields["status"] == SpeechStatus.DONE:
                _round_advance(item.speech.debate_id)
            _broadcast_changed(item.speech.debate_id)
    except SpeechSuperseded:
        logger.warning("%s: attempt %s was superseded", item.speech, item.attempt)
