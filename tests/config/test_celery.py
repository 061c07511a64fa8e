import os

from django.conf import settings


def test_a_worker_that_runs_models_lowers_its_priority(celery_worker_process):
    # The shared test worker consumes generation and training (and default).
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    worker = os.getpriority(os.PRIO_PROCESS, celery_worker_process.pid)
    assert worker == min(19, mine + settings.MODEL_WORKER_NICE)
