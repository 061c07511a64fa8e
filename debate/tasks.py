from celery import shared_task

from debate.services import speech_generate, speeches_requeue_stale


@shared_task(acks_late=True, reject_on_worker_lost=True)
def speech_generate_task(speech_id: int) -> None:
    speech_generate(speech_id=speech_id)


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
