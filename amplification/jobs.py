"""Tree expansions on the operations page's job list (core/jobs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.urls import reverse

from amplification.models import Tree, TreeStatus
from amplification.services import tree_run
from core.jobs import Job, JobSource, job_source_register


def _open_trees(since: datetime) -> Iterator[Job]:
    # A tree keeps no finish time: its last heartbeat (else its creation) dates a failure.
    failed_lately = Q(heartbeat_at__gte=since) | Q(heartbeat_at__isnull=True, created_at__gte=since)
    trees = Tree.objects.filter(
        Q(status__in=(TreeStatus.QUEUED, TreeStatus.RUNNING))
        | (Q(status=TreeStatus.FAILED) & failed_lately)
    ).select_related("created_by")
    for tree in trees.order_by("-created_at")[:100]:
        yield Job(
            source="trees",
            pk=tree.pk,
            title=f"Tree {tree.pk}: {tree.question[:60]}",
            status=tree.status,
            created_at=tree.created_at,
            error=tree.error,
            url=reverse("amplification:detail", kwargs={"pk": tree.pk}),
            owner=tree.created_by.username if tree.created_by else "",
            # Queued and running trees are the sweeper's (trees_requeue_stale).
            retryable=tree.status == TreeStatus.FAILED,
        )


def _retry(pk: int) -> None:
    if not Tree.objects.filter(pk=pk, status=TreeStatus.FAILED).exists():
        raise ValidationError("Only a failed tree can be retried.")
    tree_run(tree_id=pk)


def register() -> None:
    job_source_register(
        JobSource(name="trees", title="tree expansions", open_jobs=_open_trees, retry=_retry)
    )
