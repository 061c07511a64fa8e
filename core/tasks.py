"""Celery tasks of core: webhook deliveries, on the `default` queue. Each takes ids or names and
calls one service (core/webhooks.py)."""

from celery import shared_task

from core.webhooks import webhook_deliveries_sweep, webhook_delivery_attempt, webhook_events_flush


# No acks_late: the delivery row is the job (claimed with a conditional UPDATE); a task a worker
# lost is found by webhook_deliveries_sweep_task, which enqueues its delivery again.
@shared_task
def webhook_deliver_task(delivery_id: int) -> None:
    wait = webhook_delivery_attempt(delivery_id=delivery_id)
    if wait is not None:
        webhook_deliver_task.apply_async((delivery_id,), countdown=wait)


@shared_task
def webhook_events_flush_task(event: str) -> int:
    """A batching window closed: its buffered events become deliveries."""
    return webhook_events_flush(event=event)


@shared_task
def webhook_deliveries_sweep_task() -> int:
    """Every 30 s (CELERY_BEAT_SCHEDULE): deliveries and batches a worker lost go out again."""
    return webhook_deliveries_sweep()
