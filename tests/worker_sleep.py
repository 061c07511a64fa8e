"""Imported only by the worker tests/core/test_health.py keeps busy
(`celery worker --include tests.worker_sleep`): a task that holds the worker's only process."""

import time

from celery import shared_task


@shared_task(name="tests.sleep")
def sleep(seconds: float) -> None:
    time.sleep(seconds)
