from celery import shared_task

from debate.generation import speeches_generate, speeches_requeue_stale


@shared_task(acks_late=True, reject_on_worker_lost=True)
def speeches_generate_task(speech_ids: list[int]) -> None:
    """A speech, or both speeches of a simultaneous round (one batched generation)."""
    speeches_generate(speech_ids=speech_ids)


@shared_task
def speeches_requeue_stale_task() -> int:
    return speeches_requeue_stale()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def debate_batch_run_task(batch_id: int) -> None:
    from debate.research.batches import batch_run

    batch_run(batch_id=batch_id)


@shared_task
def batches_requeue_stale_task() -> int:
    from debate.research.batches import batches_requeue_stale

    return batches_requeue_stale()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def market_run_task(debate_id: int) -> None:
    """A market launched on its own (debate.research.markets.market_run)."""
    from debate.research.markets import market_run

    market_run(debate_id=debate_id)


@shared_task
def markets_requeue_stale_task() -> int:
    from debate.research.markets import markets_requeue_stale

    return markets_requeue_stale()
