"""Every write of the feedback app that the web process makes (the run itself, which loads a
model, is feedback/labelling.py, run by the worker).

Locking: a labelling run row is the job. `labelling_run_start` inserts a QUEUED row; the
partial unique index `labelling_run_one_open` allows one queued-or-running run per model
annotator, so a double click starts one. The worker claims the row with a conditional UPDATE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from celery import Task, current_app
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q

from annotations.models import Item, Priority, Queue
from annotations.services import item_scores_set, items_complete_mark
from core.text import text_problem
from feedback.models import (
    MAX_PRINCIPLES,
    PRINCIPLE_MAX_CHARS,
    Constitution,
    ConstitutionVersion,
    LabellingRun,
    ModelAnnotator,
    Principle,
    RunStatus,
)
from feedback.prompts import PromptInvalid, kind_shape, template_check
from feedback.routing import counted_items, routing_scores, shortcut_items
from feedback.selectors import newest_runs
from llm.generation import probability_problem
from llm.models import ModelConfig

# Sent by name: feedback.tasks imports this module, never the other way round.
LABELLING_TASK = "feedback.tasks.labelling_run_task"


class FeedbackError(Exception):
    """A domain error with a message fit for the page or the API."""

    status = 409

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class ProbabilitiesUnavailable(FeedbackError):
    """The model config cannot give the probabilities a labelling run records."""

    status = 422


def _task(name: str) -> Task:
    return current_app.tasks[name]


def principles_clean(principles: Sequence[str]) -> list[str]:
    """The principles as stored: each stripped, blank ones dropped. ValidationError for none
    at all, too many, or one over the length limit (named by its number)."""
    cleaned = [text.strip() for text in principles if text.strip()]
    if not cleaned:
        raise ValidationError("A constitution needs at least one principle.", code="empty")
    if len(cleaned) > MAX_PRINCIPLES:
        raise ValidationError(f"At most {MAX_PRINCIPLES} principles.", code="too_many")
    for number, text in enumerate(cleaned, start=1):
        if len(text) > PRINCIPLE_MAX_CHARS:
            raise ValidationError(
                f"Principle {number} has {len(text)} characters; at most "
                f"{PRINCIPLE_MAX_CHARS} are allowed.",
                code="too_long",
            )
        problem = text_problem(text)
        if problem:
            raise ValidationError(f"Principle {number} {problem}.", code="unstorable")
    return cleaned


def constitution_create(*, name: str, principles: Sequence[str], user: User | None) -> Constitution:
    cleaned = principles_clean(principles)
    with transaction.atomic():
        if Constitution.objects.filter(name=name).exists():
            raise ValidationError(f"A constitution named {name!r} exists already.")
        constitution = Constitution.objects.create(name=name, created_by=user)
        _version_add(constitution, cleaned, user)
    return constitution


def constitution_version_add(
    *, constitution: Constitution, principles: Sequence[str], user: User | None
) -> ConstitutionVersion:
    """A new version with these principles; the old versions and their labels stay."""
    cleaned = principles_clean(principles)
    with transaction.atomic():
        Constitution.objects.select_for_update().filter(pk=constitution.pk).first()
        return _version_add(constitution, cleaned, user)


def _version_add(
    constitution: Constitution, principles: list[str], user: User | None
) -> ConstitutionVersion:
    last = constitution.versions.aggregate(n=Max("number"))["n"] or 0
    version = ConstitutionVersion.objects.create(
        constitution=constitution, number=last + 1, created_by=user
    )
    Principle.objects.bulk_create(
        Principle(version=version, position=n, text=text) for n, text in enumerate(principles)
    )
    return version


def model_annotator_save(*, annotator: ModelAnnotator, user: User | None) -> ModelAnnotator:
    """Create or update a model annotator; ValidationError for a prompt its queue's kind
    cannot fill, a queue kind a model cannot label, or a model config that cannot give
    probabilities (`llm.generation.probability_problem`)."""
    try:
        shape = kind_shape(annotator.queue.item_kind)
        if annotator.prompt.strip():
            template_check(annotator.prompt, shape)
    except PromptInvalid as problem:
        raise ValidationError({"prompt": str(problem)}) from problem
    unavailable = probability_problem(annotator.model_config)
    if unavailable is not None:
        raise ValidationError({"model_config": unavailable})
    if annotator.pk is None:
        annotator.created_by = user
    annotator.full_clean()
    annotator.save()
    return annotator


def prompt_template(annotator: ModelAnnotator) -> str:
    return annotator.prompt.strip() or kind_shape(annotator.queue.item_kind).default


def _snapshot(config: ModelConfig) -> dict[str, object]:
    params = asdict(config.generation_params())
    params["stop"] = list(params["stop"])
    return {
        "id": config.pk,
        "name": config.name,
        "backend": config.backend,
        "model": config.model,
        "base_url": config.base_url,
        "system_prompt": config.system_prompt,
        "params": params,
    }


def labelling_run_start(*, annotator: ModelAnnotator, user: User | None) -> LabellingRun:
    """Queue a run of the annotator's constitution, latest version, over every item of its
    queue (gold items too: agreement with gold needs them); enqueued on commit.
    ProbabilitiesUnavailable when its model config cannot give probabilities (the config may
    have changed since the annotator was saved); FeedbackError when its queue has no items,
    or a run is already queued or running. Either way nothing is started."""
    unavailable = probability_problem(annotator.model_config)
    if unavailable is not None:
        raise ProbabilitiesUnavailable(unavailable)
    try:
        template = prompt_template(annotator)
        template_check(template, kind_shape(annotator.queue.item_kind))
    except PromptInvalid as problem:
        # Saved before the rule it now breaks (e.g. a rating prompt without $scale).
        raise FeedbackError(f"The model annotator's prompt: {problem}.", status=422) from None
    version = annotator.constitution.latest_version
    if version is None or not version.principles.exists():
        raise FeedbackError("The constitution has no principles.")
    items = Item.objects.filter(queue=annotator.queue_id).count()
    if not items:
        raise FeedbackError("The queue has no items to label.")
    try:
        with transaction.atomic():
            run = LabellingRun.objects.create(
                annotator=annotator,
                version=version,
                model_snapshot=_snapshot(annotator.model_config),
                prompt_template=template,
                items_total=items,
                created_by=user,
            )
            transaction.on_commit(lambda: _task(LABELLING_TASK).delay(run.pk))
    except IntegrityError:
        raise FeedbackError("A run of this model annotator is already queued or running.") from None
    return run


def routing_apply(*, run: LabellingRun) -> int:
    """AI first: write the run's routing scores onto its queue's items and order the queue by
    them (the `uncertainty` priority, highest first; feedback.routing says what a score is).
    A reward model scoring the same queue writes the same column: the later write wins."""
    if run.status != RunStatus.DONE:
        raise FeedbackError("Only a finished run can order the queue.")
    scores = routing_scores(run)
    with transaction.atomic():
        written = item_scores_set(scores=scores)
        Queue.objects.filter(pk=run.annotator.queue_id).update(priority=Priority.UNCERTAINTY)
    return written


def shortcuts_apply(*, queue_ids: Sequence[int]) -> int:
    """Finish the items a model annotator lets finish before k human labels, once they have
    the human labels it leaves them needing (its newest finished run decides): with
    `counts_toward_k`, an item it labelled needs k − 1; with a shortcut threshold, an item it
    labelled confidently needs `shortcut_labels`. Runs after labels commit (annotations.hooks)
    and after a run ends; cheap when no annotator of these queues does either."""
    queues = set(
        ModelAnnotator.objects.filter(queue_id__in=list(queue_ids))
        .filter(Q(shortcut_threshold__isnull=False) | Q(counts_toward_k=True))
        .values_list("queue_id", flat=True)
    )
    marked = 0
    for run in newest_runs(sorted(queues)) if queues else []:
        annotator = run.annotator
        rules = []
        if annotator.counts_toward_k:
            rules.append((annotator.queue.labels_per_item - 1, counted_items))
        if annotator.shortcut_threshold is not None:
            rules.append((annotator.shortcut_labels, shortcut_items))
        for needed, pick in rules:
            waiting = Item.objects.filter(
                queue_id=annotator.queue_id, is_gold=False, complete=False,
                label_count__gte=needed,
            ).values_list("pk", flat=True)  # fmt: skip
            ready = pick(run, among=set(waiting))
            marked += items_complete_mark(queue_id=annotator.queue_id, item_ids=sorted(ready))
    return marked
