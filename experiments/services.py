"""Every write of the experiments app: experiments and arms (frozen once anyone joins),
participants joining by study link, their answers and time-outs, assistance flags, and the
start of an assistance job (its run is experiments/assistance.py, on a worker).

Items are served and labelled through annotations' services on the arm's own queue
(queue_item_claim, label_submit, assignment_skip), so k, leases and skips are theirs.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import current_app
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.kinds import QueueKind
from annotations.models import Assignment, Item, Outcome, Queue
from annotations.services import (
    Held,
    NewItem,
    assignment_skip,
    label_submit,
    queue_item_claim,
    queue_item_prefetch,
    queue_items_create,
    queue_members_set,
)
from debate.kinds import ProbabilityValue
from debate.models import QuestionBank, Side, judge_was_correct
from experiments.assignment import arm_for
from experiments.errors import ExperimentFrozen, LinkClosed, NotYours, StudyNotReady, TimeNotUp
from experiments.models import (
    MAX_TIME_LIMIT_S,
    TRANSCRIPT_PROTOCOLS,
    Arm,
    ArmItem,
    ArmProtocol,
    Assistance,
    AssistanceFlag,
    AssistanceJob,
    AssistanceText,
    Experiment,
    Flag,
    JobStatus,
    Participant,
    Response,
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


# --- participants ------------------------------------------------------------------------
def _participant_username(experiment: Experiment, external_id: str) -> str:
    digest = hashlib.sha256(f"{experiment.pk}:{external_id}".encode()).hexdigest()[:20]
    return f"participant-{experiment.pk}-{digest}"


def participant_join(
    *,
    experiment: Experiment,
    external_id: str,
    study_id: str,
    session_id: str,
    now: datetime | None = None,
) -> tuple[Participant, bool]:
    """The participant bound to this external id: found (a returning id resumes, in the same
    arm) or made, with an account that has no password and no role, randomised to an arm
    (experiments.assignment) and made a member of that arm's queue. The first join freezes
    the arms. Refuses a closed link (LinkClosed) to newcomers and returners alike.

    Locks the experiment's row, so joins take their sequence numbers one at a time."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if not locked.link_open:
            raise LinkClosed("This study is closed: it takes no more participants.")
        found = (
            Participant.objects.select_related("arm", "user")
            .filter(experiment=locked, external_id=external_id)
            .first()
        )
        if found is not None:
            return found, False
        waiting = locked.arms.filter(
            protocol__in=TRANSCRIPT_PROTOCOLS, items_ready_at__isnull=True
        ).exists()
        if waiting:
            raise StudyNotReady(
                "This study is not open yet: its materials are still being prepared. "
                "Please try the link again later."
            )
        arms = list(locked.arms.order_by("position"))
        sequence = locked.participants.count()
        arm = arms[arm_for(locked.seed, len(arms), sequence)]
        user = User(username=_participant_username(locked, external_id))
        user.set_unusable_password()
        user.save()
        participant = Participant.objects.create(
            experiment=locked,
            user=user,
            external_id=external_id,
            study_id=study_id,
            session_id=session_id,
            sequence=sequence,
            arm=arm,
            joined_at=now,
        )
        members = list(User.objects.filter(queue_memberships__queue=arm.queue))
        queue_members_set(queue=arm.queue, users=[*members, user])
        if locked.frozen_at is None:
            Experiment.objects.filter(pk=locked.pk).update(frozen_at=now)
        return participant, True


def participant_consent(*, participant: Participant, now: datetime | None = None) -> None:
    if participant.consented_at is None:
        participant.consented_at = now or timezone.now()
        participant.save(update_fields=["consented_at"])


def participant_lease(
    *, participant: Participant, now: datetime | None = None
) -> Assignment | None:
    """The participant's current item (a lease in their arm's queue), or None when they are
    done, which records their completion. Items they let time out do not come back."""
    lease = queue_item_claim(queue=participant.arm.queue, annotator=participant.user, now=now)
    if lease is None and participant.completed_at is None:
        participant.completed_at = now or timezone.now()
        participant.save(update_fields=["completed_at"])
    return lease


def participant_prefetch(
    *, participant: Participant, renew_ahead: bool = False, now: datetime | None = None
) -> Held:
    """The participant's current item and the next one claimed ahead (annotations'
    queue_item_prefetch, on their arm's queue), so that the task page swaps the next item in
    on the key. Only for an untimed arm: a timed item's clock is the server's and starts when
    the item is served, which for an item held ahead is when the label before it arrives, a
    moment after the page has shown it. Records completion, as participant_lease does, when
    nothing is left."""
    now = now or timezone.now()
    held = queue_item_prefetch(
        queue=participant.arm.queue, annotator=participant.user, renew_ahead=renew_ahead, now=now
    )
    if held.current is None and participant.completed_at is None:
        participant.completed_at = now
        participant.save(update_fields=["completed_at"])
    return held


def _own_lease(participant: Participant, assignment_id: int) -> Assignment:
    lease = (
        Assignment.objects.select_related("item")
        .filter(pk=assignment_id, annotator=participant.user, queue=participant.arm.queue_id)
        .first()
    )
    if lease is None:
        raise NotYours("No such item.")
    return lease


def _arm_item(participant: Participant, lease: Assignment) -> ArmItem:
    return ArmItem.objects.select_related("source").get(arm=participant.arm, item=lease.item_id)


def _scored(arm_item: ArmItem, value: Mapping[str, Any]) -> tuple[bool | None, float | None]:
    """(correct, probability on the correct answer) of a label: a rating item's label is
    correct when it equals gold; a question's probability is correct above 50 % on the
    correct answer, as a debate judge's is (debate.models.judge_was_correct)."""
    if arm_item.source is not None:
        return dict(value) == arm_item.source.gold_value, None
    percent_a = ProbabilityValue.model_validate(value).probability_a
    percent = percent_a if arm_item.correct_side == Side.A else 100 - percent_a
    return judge_was_correct(percent / 100), percent / 100


def _late(participant: Participant, lease: Assignment, now: datetime) -> bool:
    limit = participant.arm.time_limit_s
    if limit is None:
        return False
    grace = participant.experiment.late_grace_s
    return (now - lease.created_at).total_seconds() > limit + grace


def response_submit(
    *,
    participant: Participant,
    assignment_id: int,
    value: Mapping[str, Any],
    client_request_id: uuid.UUID,
    time_spent_ms: int | None = None,
    now: datetime | None = None,
) -> Response:
    """Store the participant's label (annotations' label_submit, on their arm's queue) and its
    response in one transaction: late when it comes after the arm's limit plus the grace
    (measured by the server from the lease's start), correct when it equals gold. A retry
    with the same request id returns the response stored. NotYours for a lease that is not
    the participant's; annotations' errors (LeaseGone, …) pass through."""
    now = now or timezone.now()
    lease = _own_lease(participant, assignment_id)
    arm_item = _arm_item(participant, lease)
    with transaction.atomic():
        label, created = label_submit(
            assignment_id=lease.pk,
            annotator=participant.user,
            value=value,
            time_spent_ms=time_spent_ms,
            client_request_id=client_request_id,
            queue_id=participant.arm.queue_id,
            now=now,
        )
        if not created:
            return Response.objects.get(label=label)
        correct, probability_correct = _scored(arm_item, label.value)
        return Response.objects.create(
            participant=participant,
            arm_item=arm_item,
            label=label,
            served_at=lease.created_at,
            answered_at=now,
            time_ms=int((now - lease.created_at).total_seconds() * 1000),
            late=_late(participant, lease, now),
            correct=correct,
            probability_correct=probability_correct,
        )


def response_time_out(
    *, participant: Participant, assignment_id: int, now: datetime | None = None
) -> Response:
    """The item's time ran out: its lease is given back as skipped (it is not offered to the
    participant again) and a timed-out response is recorded. Refused (TimeNotUp) before the
    limit, so this is no way to skip an item."""
    now = now or timezone.now()
    lease = _own_lease(participant, assignment_id)
    limit = participant.arm.time_limit_s
    if lease.outcome != Outcome.OPEN:
        raise NotYours("That item is no longer yours.")
    if limit is None or (now - lease.created_at).total_seconds() < limit:
        raise TimeNotUp("This item's time is not up yet.")
    arm_item = _arm_item(participant, lease)
    with transaction.atomic():
        assignment_skip(assignment_id=lease.pk, annotator=participant.user)
        try:
            with transaction.atomic():
                return Response.objects.create(
                    participant=participant,
                    arm_item=arm_item,
                    served_at=lease.created_at,
                    answered_at=now,
                    time_ms=int((now - lease.created_at).total_seconds() * 1000),
                    late=True,
                    timed_out=True,
                )
        except IntegrityError:
            return Response.objects.get(participant=participant, arm_item=arm_item)


# --- assistance ----------------------------------------------------------------------------
def assistance_for_lease(participant: Participant, lease: Assignment) -> AssistanceText | None:
    """The assistance the participant's arm shows beside this item; None for an unassisted
    arm (which never reads any) or an item not generated yet."""
    arm = participant.arm
    if not arm.assisted or arm.model_config_id is None:
        return None
    arm_item = _arm_item(participant, lease)
    return AssistanceText.objects.filter(
        source=arm_item.source_id,
        model_config=arm.model_config_id,
        prompt_version=arm.prompt_version,
        kind=arm.assistance,
    ).first()


def assistance_flag(
    *, participant: Participant, assignment_id: int, flag: str, now: datetime | None = None
) -> AssistanceFlag:
    """Record that the assistance beside the participant's item helped, or was wrong. NotYours
    when the item is not theirs or their arm shows no assistance for it."""
    if flag not in Flag.values:
        raise ValidationError({"flag": [f"A flag is one of {', '.join(Flag.values)}."]})
    lease = _own_lease(participant, assignment_id)
    shown = assistance_for_lease(participant, lease)
    if shown is None:
        raise NotYours("No such item.")
    marked, _ = AssistanceFlag.objects.get_or_create(
        participant=participant,
        assistance=shown,
        flag=flag,
        defaults={"created_at": now or timezone.now()},
    )
    return marked


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
