"""Celery tasks: each takes ids and calls the worker's side. The services send them by name."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def labelling_run_task(run_id: int) -> None:
    """A run row is the job: a redelivery after a lost worker finds nothing to claim."""
    from feedback.labelling import labelling_run_execute

    labelling_run_execute(run_id=run_id)
