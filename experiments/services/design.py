"""The experiment's design, every write of it: experiments and arms (validated; frozen once
anyone joins), the study link's open/closed switch, and the start of an assistance job (its
run is experiments/assistance.py, on a worker)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from celery import current_app
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from annotations.kinds import QueueKind
from annotations.models import Item, Queue
from annotations.services import NewItem, queue_items_create
from debate.models import QuestionBank
from experiments.errors import ExperimentFrozen
from experiments.models import (
    MAX_TIME_LIMIT_S,
    TRANSCRIPT_PROTOCOLS,
    Arm,
    ArmItem,
    ArmProtocol,
    Assistance,
    AssistanceJob,
    Experiment,
    JobStatus,
)
from experiments.prompting import DEFAULT_PROMPTS
from experiments.protocols import arm_transcripts_start, bank_problems, direct_items_create
from llm.models import ModelConfig

ASSISTANCE_TASK = "experiments.tasks.assistance_generate_task"
# Kinds whose items a participant can label with the keyboard and score against gold.
RATING_KINDS = (QueueKind.PAIRWISE, QueueKind.LIKERT)


@dataclass(frozen=True)
class ArmSpec:
    name: str
    assistance: str = Assistance.NONE
    model_config: ModelConfig | None = None
    prompt: str = ""
    time_limit_s: int | None = None
    # Question-bank experiments: the arm's protocol (direct, consultancy, debate).
    protocol: str = ""


def _protocol_problems(spec: ArmSpec, where: str, on_bank: bool | None) -> dict[str, list[str]]:
    """A bank experiment's arms are protocols, a rating queue's give assistance: never the
    other way round. `on_bank` None: the question set is not known (neither or both were
    given, itself an error), so nothing to fit."""
    problems: dict[str, list[str]] = {}
    if on_bank is None:
        return problems
    if not on_bank:
        if spec.protocol:
            problems[f"{where}.protocol"] = [
                f"Arm “{spec.name}” is a {spec.protocol} arm, but protocols (direct, "
                "consultancy, debate) judge a question bank's questions and this experiment's "
                "question set is a rating queue: give its arms assistance (none, critique, "
                "suggestion) instead."
            ]
        return problems
    if spec.assistance != Assistance.NONE:
        problems[f"{where}.assistance"] = [
            f"Arm “{spec.name}” gives {spec.assistance} assistance, but a question-bank "
            "experiment's arms are protocols: choose direct, consultancy or debate."
        ]
    if spec.protocol not in ArmProtocol.values:
        problems[f"{where}.protocol"] = [
            f"Arm “{spec.name}” needs a protocol: one of {', '.join(ArmProtocol.values)}."
        ]
    elif spec.protocol in TRANSCRIPT_PROTOCOLS and spec.model_config is None:
        problems[f"{where}.model_config"] = [
            f"Arm “{spec.name}” is a {spec.protocol} arm: choose the model config that speaks "
            "its transcripts."
        ]
    return problems


def _arm_problems(
    specs: Sequence[ArmSpec], first_position: int = 0, *, on_bank: bool | None = False
) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for number, spec in enumerate(specs, start=first_position):
        where = f"arms.{number}"
        if not spec.name.strip():
            problems.setdefault(f"{where}.name", []).append("An arm needs a name.")
        for field, messages in _protocol_problems(spec, where, on_bank).items():
            problems.setdefault(field, []).extend(messages)
        if spec.assistance not in Assistance.values:
            problems.setdefault(f"{where}.assistance", []).append(
                f"Assistance must be one of {', '.join(Assistance.values)}."
            )
        elif not on_bank and spec.assistance != Assistance.NONE and spec.model_config is None:
            problems.setdefault(f"{where}.model_config", []).append(
                f"Arm “{spec.name}” gives {spec.assistance} assistance: choose the model config "
                "that writes it."
            )
        limit = spec.time_limit_s
        if limit is not None and (isinstance(limit, bool) or not 1 <= limit <= MAX_TIME_LIMIT_S):
            problems.setdefault(f"{where}.time_limit_s", []).append(
                f"A time limit is a whole number of seconds from 1 to {MAX_TIME_LIMIT_S} "
                f"(an hour), or none; got {limit}."
            )
    names = [spec.name.strip().lower() for spec in specs]
    if len(set(names)) != len(names):
        problems.setdefault("arms", []).append("Two arms have the same name.")
    return problems


def _gold_items(question_set: Queue) -> list[Item]:
    return list(Item.objects.filter(queue=question_set, is_gold=True).order_by("id"))


def _arm_create(experiment: Experiment, position: int, spec: ArmSpec, gold: list[Item]) -> Arm:
    """The arm and its queue: a copy of each gold item as an ordinary item (its gold stays in
    ArmItem.source), k = the experiment's, no gold rate, leases that outlast the time limit.
    A question-bank arm's queue takes question judgments: a direct arm's items are made now,
    a consultancy or debate arm's once its transcripts are spoken (experiments.protocols,
    started when the transaction commits)."""
    limit_minutes = -(-(spec.time_limit_s or 0) // 60) + 1
    if experiment.question_set is not None:
        queue_kind = experiment.question_set.kind
    else:
        queue_kind = QueueKind.QUESTION_JUDGMENT
    queue = Queue.objects.create(
        name=f"experiment {experiment.pk} arm {position + 1} ({experiment.slug})",
        kind=queue_kind,
        labels_per_item=experiment.labels_per_item,
        gold_rate=0.0,
        lease_minutes=max(10, limit_minutes),
        created_by=experiment.created_by,
    )
    prompt = spec.prompt or DEFAULT_PROMPTS.get(Assistance(spec.assistance), "")
    arm = Arm.objects.create(
        experiment=experiment,
        position=position,
        name=spec.name.strip(),
        assistance=spec.assistance,
        protocol=spec.protocol,
        model_config=(
            spec.model_config
            if spec.assistance != Assistance.NONE or spec.protocol in TRANSCRIPT_PROTOCOLS
            else None
        ),
        prompt=prompt if spec.assistance != Assistance.NONE else "",
        time_limit_s=spec.time_limit_s,
        queue=queue,
    )
    if experiment.question_bank_id is not None:
        if arm.transcripts:
            transaction.on_commit(lambda: arm_transcripts_start(arm=arm))
        else:
            direct_items_create(arm=arm)
        return arm
    kind = queue.item_kind
    queue_items_create(
        queue=queue,
        items=[
            NewItem(payload=item.typed_payload(kind), external_id=f"source-{item.pk}")
            for item in gold
        ],
    )
    copies = Item.objects.filter(queue=queue).values_list("pk", "external_id")
    ArmItem.objects.bulk_create(
        ArmItem(arm=arm, item_id=pk, source_id=int(external.removeprefix("source-")))
        for pk, external in copies
    )
    return arm


def experiment_create(
    *,
    name: str,
    slug: str,
    question_set: Queue | None = None,
    question_bank: QuestionBank | None = None,
    arms: Sequence[ArmSpec],
    consent: str,
    completion_code: str,
    instructions: str = "",
    completion_url: str = "",
    labels_per_item: int = 50,
    late_grace_s: int = 2,
    late_excluded: bool = True,
    expert_gold: bool = False,
    seed: int | None = None,
    user: User | None = None,
) -> Experiment:
    """An experiment with its arms, all or nothing. Its question set is a rating queue (arms
    give assistance) or a debate question bank (arms are protocols). Refuses
    (ValidationError naming each field) fewer than two arms, a time limit ≤ 0 or over an
    hour, an assisted or consultancy/debate arm without a model config, protocol arms on a
    rating queue or assistance arms on a bank, a question set that is not a rating queue with
    gold items, and a bank without questions that have a correct answer. A consultancy or
    debate arm's transcripts start generating when the experiment is committed."""
    known = (question_set is None) != (question_bank is None)
    problems = _arm_problems(arms, on_bank=(question_bank is not None) if known else None)
    if len(arms) < 2:
        problems.setdefault("arms", []).append(
            f"An experiment compares conditions: it needs at least two arms, got {len(arms)}."
        )
    if (question_set is None) == (question_bank is None):
        problems.setdefault("question_set", []).append(
            "Choose the experiment's questions: a rating queue or a question bank (one of them)."
        )
    elif question_bank is not None:
        transcripts = any(spec.protocol in TRANSCRIPT_PROTOCOLS for spec in arms)
        for problem in bank_problems(question_bank, transcripts=transcripts):
            problems.setdefault("question_bank", []).append(problem)
    elif question_set is not None and question_set.kind not in RATING_KINDS:
        problems.setdefault("question_set", []).append(
            f"The question set must be a pairwise or Likert queue, not {question_set.kind}."
        )
    elif (
        question_set is not None
        and not Item.objects.filter(queue=question_set, is_gold=True).exists()
    ):
        problems.setdefault("question_set", []).append(
            f"Queue “{question_set.name}” has no gold items: accuracy on gold, the primary "
            "metric, needs them. Import items with gold labels first."
        )
    if not consent.strip():
        problems.setdefault("consent", []).append("Participants must see a consent text first.")
    if not completion_code.strip():
        problems.setdefault("completion_code", []).append("A completion code is needed.")
    if problems:
        raise ValidationError(problems)
    experiment = Experiment(
        name=name.strip(),
        slug=slug,
        question_set=question_set,
        question_bank=question_bank,
        consent=consent,
        instructions=instructions,
        completion_code=completion_code.strip(),
        completion_url=completion_url,
        labels_per_item=labels_per_item,
        late_grace_s=late_grace_s,
        late_excluded=late_excluded,
        expert_gold=expert_gold,
        seed=seed if seed is not None else random.SystemRandom().randrange(2**31),
        created_by=user,
    )
    experiment.full_clean()
    gold = _gold_items(question_set) if question_set is not None else []
    with transaction.atomic():
        experiment.save()
        for position, spec in enumerate(arms):
            _arm_create(experiment, position, spec, gold)
    return experiment


def _refuse_if_frozen(experiment: Experiment) -> None:
    if experiment.frozen_at is not None:
        count = experiment.participants.count()
        raise ExperimentFrozen(
            f"Experiment “{experiment.name}” is frozen: {count} participant"
            f"{'s' if count != 1 else ''} joined (the first at "
            f"{experiment.frozen_at:%Y-%m-%d %H:%M} UTC), so its arms cannot change without "
            "breaking the randomisation. Create a new experiment instead."
        )


def arm_add(*, experiment: Experiment, spec: ArmSpec) -> Arm:
    """Add an arm before anyone joins; ExperimentFrozen after."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        _refuse_if_frozen(experiment)
        position = experiment.arms.count()
        problems = _arm_problems([spec], first_position=position, on_bank=experiment.on_bank)
        bank = experiment.question_bank
        if bank is not None and spec.protocol in TRANSCRIPT_PROTOCOLS:
            for problem in bank_problems(bank, transcripts=True):
                problems.setdefault("question_bank", []).append(problem)
        if experiment.arms.filter(name__iexact=spec.name.strip()).exists():
            problems.setdefault(f"arms.{position}.name", []).append(
                f"The experiment already has an arm named “{spec.name}”."
            )
        if problems:
            raise ValidationError(problems)
        question_set = experiment.question_set
        gold = _gold_items(question_set) if question_set is not None else []
        return _arm_create(experiment, position, spec, gold)


class _Unchanged:
    """The default of arm_change's time limit: leave it as it is (None removes it)."""


UNCHANGED = _Unchanged()


def arm_change(
    *, arm: Arm, prompt: str | None = None, time_limit_s: int | None | _Unchanged = UNCHANGED
) -> Arm:
    """Edit an arm's prompt or time limit (None removes it) before anyone joins."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=arm.experiment_id)
        _refuse_if_frozen(experiment)
        spec = ArmSpec(
            name=arm.name,
            assistance=arm.assistance,
            model_config=arm.model_config,
            time_limit_s=(
                arm.time_limit_s if isinstance(time_limit_s, _Unchanged) else time_limit_s
            ),
            protocol=arm.protocol,
        )
        problems = _arm_problems([spec], first_position=arm.position, on_bank=experiment.on_bank)
        if problems:
            raise ValidationError(problems)
        arm.time_limit_s = spec.time_limit_s
        if prompt is not None and arm.assisted:
            arm.prompt = prompt
        arm.save(update_fields=["time_limit_s", "prompt"])
        return arm


def experiment_link_set(*, experiment: Experiment, open: bool) -> Experiment:
    """Open or close the study link (allowed at any time: it changes no arm)."""
    Experiment.objects.filter(pk=experiment.pk).update(link_open=open)
    experiment.link_open = open
    return experiment


def assistance_job_start(*, arm: Arm) -> AssistanceJob:
    """Queue the generation of an arm's assistance for all its items (a Celery job)."""
    if not arm.assisted:
        raise ValidationError({"arm": [f"Arm “{arm.name}” is unassisted: nothing to generate."]})
    with transaction.atomic():
        job = AssistanceJob.objects.create(arm=arm, items_total=arm.arm_items.count())
        transaction.on_commit(lambda: current_app.tasks[ASSISTANCE_TASK].delay(job.pk))
    return job


def assistance_job_retry(job_id: int) -> None:
    job = AssistanceJob.objects.filter(pk=job_id).first()
    if job is None or job.status not in (JobStatus.FAILED, JobStatus.RUNNING):
        raise ValidationError("Only a failed or stuck assistance job can be retried.")
    assistance_job_start(arm=job.arm)
