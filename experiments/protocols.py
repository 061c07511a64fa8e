"""The writes of question-bank experiments: their arms are protocols (direct, consultancy,
debate), their items question-judgment items, their transcripts generated ahead.

A direct arm's items are made with the arm: the question and its two answers (the correct one
and the distractor a two-answer debate uses), the correct side drawn per arm and question
from the experiment's seed. A consultancy or debate arm's items come from a debate batch
(debate.research.batches, the machinery of every batch debate) that speaks all the bank's
questions with the arm's model config before anyone joins: each item is a batch debate's
question, its answers in the debate's order and its finished transcript. The study link
takes no newcomer until every such arm's items are in its queue (`items_ready_at`), so a
participant never waits for a model.

No item carries the passage or the correct side: those stay in the bank and on ArmItem.
"""

from __future__ import annotations

import random
from typing import cast

from celery import current_app
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotations.models import Item
from annotations.services import NewItem, queue_items_create
from debate.generation import debate_transcript
from debate.kinds import DebateTurn, QuestionPayload
from debate.models import BankQuestion, BatchStatus, Debate, DebateBatch, QuestionBank, Side
from debate.records import BatchSpec
from debate.research.batches import batch_create, batch_run
from experiments.models import Arm, ArmItem, ArmProtocol, Experiment

TRANSCRIPT_TASK = "experiments.tasks.arm_transcripts_task"
# Rounds a consultancy or debate arm's transcripts have (simultaneous speeches, Khan et al.).
TRANSCRIPT_ROUNDS = 2
# The most debates one batch holds (debate.records.BatchSpec.count).
MAX_BATCH_QUESTIONS = 1000


def _answerable(question: BankQuestion) -> bool:
    """Two answers or more, none empty, and the correct one (and the distractor) among them."""
    options = question.options
    if not isinstance(options, list) or len(options) < 2:
        return False
    if not all(isinstance(option, str) and option.strip() for option in options):
        return False
    if not 0 <= question.gold_index < len(options):
        return False
    distractor = question.distractor_index
    return distractor is None or (
        0 <= distractor < len(options) and distractor != question.gold_index
    )


def bank_problems(bank: QuestionBank, *, transcripts: bool = False) -> list[str]:
    """Why the bank cannot be an experiment's question set ([] when it can); `transcripts`:
    with consultancy or debate arms, whose batch holds every question."""
    questions = list(bank.questions.order_by("line"))
    if transcripts and len(questions) > MAX_BATCH_QUESTIONS:
        return [
            f"Question bank “{bank.name}” has {len(questions)} questions; a consultancy or "
            f"debate arm's transcripts are one batch of at most {MAX_BATCH_QUESTIONS}."
        ]
    if not questions:
        return [
            f"Question bank “{bank.name}” has no questions: accuracy on gold, the primary "
            "metric, needs questions with a correct answer. Import questions first."
        ]
    broken = [question.line for question in questions if not _answerable(question)]
    if broken:
        lines = ", ".join(str(line) for line in broken[:10])
        more = f" and {len(broken) - 10} more" if len(broken) > 10 else ""
        return [
            f"Question bank “{bank.name}” has questions without two answers and a correct one "
            f"among them (lines {lines}{more}): every question needs both, to be judged and "
            "scored."
        ]
    return []


def _direct_side(experiment: Experiment, arm_position: int, question: BankQuestion) -> str:
    """The side the correct answer is shown on: drawn from the seed, per arm and question."""
    rng = random.Random(f"{experiment.seed}:{arm_position}:{question.pk}")
    return rng.choice([Side.A, Side.B])


def _answers(question: BankQuestion, correct_side: str) -> tuple[str, str]:
    gold, other = question.options[question.gold_index], question.options[question.distractor]
    return (gold, other) if correct_side == Side.A else (other, gold)


def _link_items(arm: Arm, rows: dict[str, tuple[BankQuestion, str, Debate | None]]) -> None:
    """ArmItem rows for the queue items just made, by their external ids."""
    copies = Item.objects.filter(queue=arm.queue, external_id__in=list(rows)).values_list(
        "pk", "external_id"
    )
    ArmItem.objects.bulk_create(
        ArmItem(
            arm=arm,
            item_id=pk,
            bank_question=rows[external][0],
            correct_side=rows[external][1],
            debate=rows[external][2],
        )
        for pk, external in copies
    )


def direct_items_create(*, arm: Arm) -> None:
    """A direct arm's items: each bank question with its two answers and no transcript.
    Runs inside the caller's transaction (experiment_create, arm_add)."""
    experiment = arm.experiment
    assert experiment.question_bank is not None
    new: list[NewItem] = []
    rows: dict[str, tuple[BankQuestion, str, Debate | None]] = {}
    for question in experiment.question_bank.questions.order_by("line"):
        side = _direct_side(experiment, arm.position, question)
        answer_a, answer_b = _answers(question, side)
        external = f"question-{question.pk}"
        payload = QuestionPayload(question=question.question, answer_a=answer_a, answer_b=answer_b)
        new.append(NewItem(payload=payload, external_id=external))
        rows[external] = (question, side, None)
    queue_items_create(queue=arm.queue, items=new)
    _link_items(arm, rows)
    Arm.objects.filter(pk=arm.pk).update(items_ready_at=timezone.now())


def arm_transcripts_start(*, arm: Arm, user: User | None = None) -> DebateBatch:
    """Have the arm's transcripts generated ahead: a debate batch of every bank question with
    the arm's model config (debate: the same config on both sides), run by an experiments job
    that then makes the transcripts the arm's items. A failed batch is replaced by a new one;
    a done one is only collected again. ValidationError for a direct or rating-queue arm.

    Locks the arm's row, so two starts make one batch."""
    if not arm.transcripts:
        raise ValidationError(
            {"arm": [f"Arm “{arm.name}” has no transcripts: only consultancy and debate arms do."]}
        )
    with transaction.atomic():
        locked = (
            # of=self: lock the arm only; PostgreSQL cannot lock the nullable side of the
            # outer joins (a question bank, a batch not made yet).
            Arm.objects.select_for_update(of=("self",))
            .select_related("experiment__question_bank", "model_config", "debate_batch")
            .get(pk=arm.pk)
        )
        bank = locked.experiment.question_bank
        config = locked.model_config
        assert bank is not None and config is not None  # protocol_arm_has_model
        batch = locked.debate_batch
        if batch is None or batch.status == BatchStatus.FAILED:
            spec = BatchSpec.model_validate(
                {
                    "protocol": locked.protocol,
                    "rounds": TRANSCRIPT_ROUNDS,
                    "debater_a_config_id": config.pk,
                    "debater_b_config_id": (
                        config.pk if locked.protocol == ArmProtocol.DEBATE else None
                    ),
                    "count": bank.questions.count(),
                }
            )
            batch = batch_create(
                name=f"experiment {locked.experiment.slug}: {locked.name}",
                bank=bank,
                spec=spec,
                created_by=cast(User, user or locked.experiment.created_by),
                external_judges=True,
            )
            locked.debate_batch = batch
            locked.save(update_fields=["debate_batch"])
        arm_id = locked.pk
        transaction.on_commit(lambda: current_app.tasks[TRANSCRIPT_TASK].delay(arm_id))
    return batch


def arm_transcripts_run(*, arm_id: int) -> None:
    """Worker side: run the arm's batch (a second delivery, or a batch another worker holds,
    claims nothing and returns at once), then collect its transcripts if it is done."""
    arm = Arm.objects.filter(pk=arm_id).first()
    if arm is None or arm.debate_batch_id is None:
        return
    batch_run(batch_id=arm.debate_batch_id)
    arm_transcripts_collect(arm=arm)


def arm_transcripts_collect(*, arm: Arm) -> int:
    """Once the arm's batch is done: each of its debates with a transcript becomes an item of
    the arm's queue (question, answers in the debate's order, the speeches), and the arm is
    ready. Returns the items made. A debate whose every speech failed has nothing to judge
    it by and is left out (the page's item count shows it). Locks the arm's row: collected
    once."""
    if arm.debate_batch_id is None:
        return 0
    batch = DebateBatch.objects.filter(pk=arm.debate_batch_id).first()
    if batch is None or batch.status != BatchStatus.DONE:
        return 0
    with transaction.atomic():
        locked = Arm.objects.select_for_update(of=("self",)).select_related("queue").get(pk=arm.pk)
        if locked.items_ready_at is not None:
            return 0
        debates = (
            Debate.objects.filter(batch=batch, bank_question__isnull=False)
            .select_related("bank_question")
            .prefetch_related("speeches", "judge_turns")
            .order_by("bank_question__line")
        )
        new: list[NewItem] = []
        rows: dict[str, tuple[BankQuestion, str, Debate | None]] = {}
        for debate in debates:
            turns = [
                DebateTurn(speaker=entry.speaker, text=entry.text)
                for entry in debate_transcript(debate, before=None)
                if entry.speaker != "Judge"
            ]
            if not turns or debate.bank_question is None:
                continue
            external = f"question-{debate.bank_question_id}"
            payload = QuestionPayload(
                question=debate.question,
                answer_a=debate.answer_a,
                answer_b=debate.answer_b,
                turns=turns,
            )
            new.append(NewItem(payload=payload, external_id=external))
            rows[external] = (debate.bank_question, debate.correct_side, debate)
        made = queue_items_create(queue=locked.queue, items=new, skip_existing=True)
        _link_items(locked, rows)
        locked.items_ready_at = timezone.now()
        locked.save(update_fields=["items_ready_at"])
    return made
