import uuid

import pytest

from core.tasks import ping


@pytest.mark.worker
def test_a_task_round_trips_through_a_real_worker(celery_worker_process):
    token = uuid.uuid4().hex
    result = ping.delay(token)
    reply = result.get(timeout=30)
    assert reply["token"] == token
    # Executed by the worker process, not eagerly in ours.
    assert result.state == "SUCCESS"
    assert celery_worker_process.poll() is None
