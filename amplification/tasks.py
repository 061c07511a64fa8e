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
    return trees_requeue_stale()
