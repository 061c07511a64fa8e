import os
from pathlib import Path

import pytest

from config.celery import autogroup_nice
from tests.helpers import process_stop, worker_start


def autogroup_nice_of(pid: int) -> int | None:
    """The nice value of the process's scheduling autogroup, or None where it has none: the
    file is missing without sched_autogroup and empty for a process in a task cgroup (as in
    many containers)."""
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text()  # "/autogroup-85 nice 0"
    except OSError:
        return None
    words = text.split()
    return int(words[-1]) if len(words) == 3 and words[1] == "nice" else None


def test_a_model_worker_in_a_session_of_its_own_lowers_its_priority_and_its_autogroup(
    redis_server,
):
    # With sched_autogroup, CPU is shared between sessions first: without the group's nice
    # the replicas, each in a session of its own, would gain nothing from the worker's.
    worker = worker_start(
        queues="generation", log_name="nice-worker", session_leader=True,
        env={"MODEL_WORKER_NICE": "7"},
    )  # fmt: skip
    try:
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(19, mine + 7)
        if autogroup_nice_of(os.getpid()) is not None:
            assert autogroup_nice_of(worker.pid) == 7
    finally:
        process_stop(worker)


def test_a_process_inside_another_session_leaves_that_sessions_group_alone():
    # A process that does not lead its session (pytest, started from a shell) must not lower
    # the group: that would slow the shell and everything else it started.
    if os.getsid(0) == os.getpid():
        pytest.skip("this pytest leads its own session")
    before = autogroup_nice_of(os.getpid())
    autogroup_nice(7)
    assert autogroup_nice_of(os.getpid()) == before
