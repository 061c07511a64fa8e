"""Celery tasks: each takes ids and runs the worker's side (amplification/expansion.py).
The services that send them import this module; nothing here imports the services."""

from celery import shared_task

from amplification.expansion import node_draft, tree_expand, trees_requeue_stale


@shared_task(acks_late=True, reject_on_worker_lost=True)
def tree_expand_task(tree_id: int) -> None:
    tree_expand(tree_id=tree_id)


@shared_task
def node_draft_task(node_id: int, attempt: int) -> None:
    node_draft(node_id=node_id, attempt=attempt)


@shared_task
def trees_requeue_stale_task() -> int:
    requeued = trees_requeue_stale()
    for tree_id in requeued:
        tree_expand_task.delay(tree_id)
    return len(requeued)


@shared_task
def iteration_judge_task(iteration_id: int) -> int:
    """On `training` (CELERY_TASK_ROUTES), beside the rewards app's scoring: it loads a reward
    checkpoint and generates nothing. Imported here, not above: it imports torch on its way."""
    from amplification.iteration_judge import iteration_pairs_score

    return iteration_pairs_score(iteration_id=iteration_id)
