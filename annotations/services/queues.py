"""Queues and their members."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotations.models import (
    Assignment,
    Outcome,
    Queue,
    QueueMember,
)


def queue_save(*, queue: Queue, user: User | None) -> Queue:
    """Save a queue a QueueForm has validated (new or edited)."""
    if queue.pk is None and user is not None:
        queue.created_by = user
    queue.save()
    return queue


def queue_members_set(*, queue: Queue, users: Iterable[User]) -> None:
    """Make `users` exactly the queue's members. Leases of removed members are released."""
    wanted = {user.pk for user in users}
    with transaction.atomic():
        current = set(QueueMember.objects.filter(queue=queue).values_list("user_id", flat=True))
        removed = current - wanted
        QueueMember.objects.filter(queue=queue, user_id__in=removed).delete()
        Assignment.objects.filter(
            queue=queue, annotator_id__in=removed, outcome=Outcome.OPEN
        ).update(outcome=Outcome.RELEASED, closed_at=timezone.now())
        QueueMember.objects.bulk_create(
            [QueueMember(queue=queue, user_id=pk) for pk in wanted - current]
        )
