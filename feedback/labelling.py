"""The worker's side of a labelling run: every item of the queue, each principle, each order,
asked in batches through `llm.generation.choose` (one forward pass per chat on the
transformers backend: the options' first-token probabilities, never sampled), one call per
principle and batch of items so that the prompts of a call share everything before the item.

The run row is the job: claimed QUEUED → RUNNING with a conditional UPDATE (a second delivery
finds nothing to claim); each batch's labels are written with the progress in one transaction,
conditional on the run still RUNNING.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from annotations.kinds import ItemKind
from annotations.models import Item
from feedback.models import AILabel, LabellingRun, Principle, RunStatus
from feedback.prompts import (
    Order,
    Reading,
    Shape,
    comparison_reading,
    kind_shape,
    orders_for,
    rating_reading,
)
from feedback.services import shortcuts_apply
from llm.backends.base import GenerationError, OptionChoice
from llm.generation import chat_messages, choose

# Items per batch: under each principle, their two orders are one `choose` call of 64 chats.
# The transformers backend runs the call's shared prefix once and the rows 16 to a forward
# pass (_CHOICE_BATCH), so a larger call runs the prefix less often: bench/ai_labels.py gave
# 2.9x one at a time with 16 chats a call, 3.2x with 32 and 3.4x with 64 (README).
BATCH_ITEMS = 32
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Question:
    item: Item
    principle: Principle
    orders: list[Order]


def _claim(run_id: int) -> bool:
    claimed = LabellingRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    return claimed == 1


def _order_record(order: Order, choice: OptionChoice) -> dict[str, object]:
    return {
        "order": order.name,
        "prompt": order.text,
        "method": choice.method,
        "probabilities": None if choice.probabilities is None else list(choice.probabilities),
        "option_mass": choice.option_mass,
        "replies": list(choice.replies),
    }


def _reading(shape: Shape, choices: Sequence[OptionChoice]) -> Reading:
    first, second = choices
    read = comparison_reading if shape.comparison else rating_reading
    return read(first.probabilities, second.probabilities)


def labelling_run_execute(*, run_id: int) -> None:
    """Run one labelling run to the end; a failure marks it FAILED with the reason."""
    if not _claim(run_id):
        return
    run = LabellingRun.objects.select_related(
        "annotator__queue", "annotator__model_config", "version"
    ).get(pk=run_id)
    try:
        _label_all(run)
    except GenerationError as error:
        _finish(run, RunStatus.FAILED, error.message)
        return
    except Exception as error:
        log.exception("labelling run %s failed", run_id)
        _finish(run, RunStatus.FAILED, f"{type(error).__name__}: {error}")
        raise
    _finish(run, RunStatus.DONE, "")
    # Items that already have the fewer human labels a confident answer asks for finish now.
    shortcuts_apply(queue_ids=[run.annotator.queue_id])


def _finish(run: LabellingRun, status: str, error: str) -> None:
    LabellingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=status, error=error, finished_at=timezone.now()
    )


def _label_all(run: LabellingRun) -> None:
    annotator = run.annotator
    kind: ItemKind = annotator.queue.item_kind
    shape = kind_shape(kind)
    principles = list(run.version.principles.order_by("position"))
    items = Item.objects.filter(queue=annotator.queue_id).order_by("pk")
    batch: list[Item] = []
    for item in items.iterator(chunk_size=500):
        batch.append(item)
        if len(batch) == BATCH_ITEMS:
            _label_batch(run, kind, shape, principles, batch)
            batch = []
    if batch:
        _label_batch(run, kind, shape, principles, batch)


def _label_batch(
    run: LabellingRun,
    kind: ItemKind,
    shape: Shape,
    principles: list[Principle],
    items: list[Item],
) -> None:
    config = run.annotator.model_config
    # One `choose` call a principle: the transformers backend runs the prompts' common prefix
    # once a call, and under one principle that prefix runs up to the item (chat template,
    # instruction, question, principle); principles mixed in one call share it only up to
    # "Principle: ", and every row pays for the rest.
    by_principle: list[list[AILabel]] = []
    method = ""
    for principle in principles:
        questions = [
            Question(item, principle, orders_for(kind, shape, run.prompt_template, item.payload,
                                                 principle.text))
            for item in items
        ]  # fmt: skip
        chats = [chat_messages(config, order.text) for q in questions for order in q.orders]
        choices = choose(config, chats, shape.options)
        method = method or (choices[0].method if choices else "")
        by_principle.append(_labels(run, shape, questions, choices))
    # Stored item by item, each item's principles in order, as before the calls were split.
    labels = [label for row in zip(*by_principle, strict=True) for label in row]
    with transaction.atomic():
        updated = LabellingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            items_done=run.items_done + len(items), method=method
        )
        if not updated:
            raise RuntimeError("the run is no longer running")
        AILabel.objects.bulk_create(labels)
    run.items_done += len(items)


def _labels(
    run: LabellingRun, shape: Shape, questions: list[Question], choices: Sequence[OptionChoice]
) -> list[AILabel]:
    """The questions' labels from their orders' choices (in the order they were asked)."""
    labels = []
    position = 0
    for question in questions:
        asked = choices[position : position + len(question.orders)]
        position += len(question.orders)
        reading = _reading(shape, asked)
        labels.append(
            AILabel(
                run=run,
                item=question.item,
                principle=question.principle,
                value=reading.value,
                probability=reading.probability,
                distribution=reading.distribution,
                orders=[
                    _order_record(order, choice)
                    for order, choice in zip(question.orders, asked, strict=True)
                ],
                orders_disagree=reading.orders_disagree,
            )
        )
    return labels
