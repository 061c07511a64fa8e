import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.helpers import process_stop, worker_start


def test_a_worker_that_runs_models_lowers_its_priority(celery_worker_process):
    # The shared test worker consumes generation and training (and default).
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    worker = os.getpriority(os.PRIO_PROCESS, celery_worker_process.pid)
    assert worker == min(19, mine + settings.MODEL_WORKER_NICE)


def autogroup_nice_of(pid: int) -> int | None:
    """The nice value of the process's scheduling autogroup, or None without autogroups."""
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text()  # "/autogroup-85 nice 0"
    except OSError:
        return None
    return int(text.split()[-1])


@pytest.mark.django_db(transaction=True)
def test_a_model_worker_in_a_session_of_its_own_lowers_its_autogroup(redis_server):
    # With sched_autogroup, CPU is shared between sessions first: without this the replicas,
    # each in a session of its own, gain nothing from the worker's nice value.
    if autogroup_nice_of(os.getpid()) is None:
        pytest.skip("this kernel has no scheduling autogroups")
    worker = worker_start(queues="generation", log_name="autogroup-worker", session_leader=True)
    try:
        assert autogroup_nice_of(worker.pid) == settings.MODEL_WORKER_NICE
    finally:
        process_stop(worker)


def test_a_worker_started_inside_another_session_leaves_that_sessions_group_alone(
    celery_worker_process,
):
    # The shared test worker runs in pytest's session: lowering that group would slow pytest.
    assert autogroup_nice_of(os.getpid()) in (None, 0)
