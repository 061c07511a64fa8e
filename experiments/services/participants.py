"""Every write a participant causes: joining by study link, consent, the items they are
served (annotations' claims on their arm's own queue, so k, leases and skips are the
queues'), their answers and time-outs, and their flags on the assistance beside an item,
which only an assisted arm reads."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.models import Assignment, Outcome
from annotations.services import (
    Held,
    assignment_skip,
    label_submit,
    queue_item_claim,
    queue_item_prefetch,
    queue_members_set,
)
from debate.kinds import ProbabilityValue
from debate.models import Side, judge_was_correct
from experiments.assignment import arm_for
from experiments.errors import LinkClosed, NotYours, StudyNotReady, TimeNotUp
from experiments.models import (
    TRANSCRIPT_PROTOCOLS,
    ArmItem,
    AssistanceFlag,
    AssistanceText,
    Experiment,
    Flag,
    Participant,
    Response,
)


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
