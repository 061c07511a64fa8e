import pytest


@pytest.fixture
def enqueued(monkeypatch, django_capture_on_commit_callbacks):
    """Tasks sent to the generation queue, once their transaction commits: each the list of
    speech ids it generates together (both speeches of a simultaneous round are one task).

    Only the end-to-end browser test lets a real worker generate speeches; elsewhere a task
    sent to the broker would be picked up by that worker later, for a row long gone.
    """
    from debate.tasks import speeches_generate_task

    sent: list[list[int]] = []
    monkeypatch.setattr(speeches_generate_task, "delay", sent.append)
    return sent
