import pytest


@pytest.fixture
def enqueued(monkeypatch, django_capture_on_commit_callbacks):
    """Speech ids sent to the generation queue, once their transaction commits.

    Only the end-to-end browser test lets a real worker generate speeches; elsewhere a task
    sent to the broker would be picked up by that worker later, for a row long gone.
    """
    from debate.tasks import speech_generate_task

    sent: list[int] = []
    monkeypatch.setattr(speech_generate_task, "delay", sent.append)
    return sent
