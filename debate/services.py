"""Every write of a debate: setup, the judge's turns, the judgment. A speech's own life
(queued, generated, restarted) is debate.generation's; these services start rounds and
retries through its public functions.

Debate rows are locked (`select_for_update`) for every state transition, so a double-clicked
button or two browser tabs cannot advance a debate twice. Events reach browsers after commit.
"""

from __future__ import annotations

import logging
import secrets

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotations.models import Item, Queue
from annotations.services import NewItem, queue_items_create
from core.models import WebhookEvent
from core.webhooks import webhook_emit
from debate.events import debate_changed
from debate.generation import (
    SPEECH_STALE_AFTER,
    debate_transcript,
    speech_restart,
    speeches_enqueue,
    speeches_stale,
)
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
from debate.research.markets import market_start, market_step_retry
from llm.models import ModelConfig

logger = logging.getLogger(__name__)


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
        if debate.protocol == Protocol.MARKET:
            market_start(debate)  # a market's steps run on a worker, not round by round
        else:
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
    debate_changed(debate.pk)
    webhook_emit(
        event=WebhookEvent.DEBATE_JUDGED,
        payload={"debate_id": debate.pk, "judge": judge.get_username(),
                 "probability_a": probability_a, "judge_turns": judge_turns},
    )  # fmt: skip
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
    speeches_enqueue([speech.pk for speech in starting])
    debate_changed(debate.pk)


def speech_retry(*, speech_id: int) -> Speech:
    """Start a failed (or stale: see speeches_stale) speech again from nothing, so no text is
    duplicated. A speech a worker is still writing is refused: a retry would start a second
    generation of it. A market's failed step sends the market's run again instead
    (market_step_retry). ValidationError says why."""
    with transaction.atomic():
        speech = Speech.objects.select_for_update().get(pk=speech_id)
        if speech.debate.protocol == Protocol.MARKET:
            market_step_retry(speech)
        else:
            if (
                speech.status != SpeechStatus.FAILED
                and not speeches_stale().filter(pk=speech.pk).exists()
            ):
                raise ValidationError(_speech_retry_refusal(speech))
            speech_restart(speech)
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
