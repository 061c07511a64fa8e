"""The operations page's jobs list (core/jobs.py): every source's queued, running and failed
jobs with age, error and a retry; only admins see it or retry."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotations.models import ExportJob, JobStatus
from core.jobs import job_sources
from debate.models import Speech, SpeechStatus
from debate.services import debate_prior_submit
from llm.models import ModelTrial, TrialStatus
from tests.factories import DebateFactory, ModelTrialFactory
from tests.helpers import signed_in


@pytest.fixture
def jobs(researcher, admin_user, monkeypatch):
    from debate.tasks import speeches_generate_task

    monkeypatch.setattr(speeches_generate_task, "delay", lambda ids: None)
    now = timezone.now()
    export = ExportJob.objects.create(
        created_by=researcher, spec={"queues": [1], "format": "csv"}, status=JobStatus.FAILED,
        error="ValueError: the disk <b>is</b> full", finished_at=now,
    )  # fmt: skip
    running = ExportJob.objects.create(
        created_by=researcher, spec={"queues": [1]}, status=JobStatus.RUNNING
    )
    done = ExportJob.objects.create(created_by=researcher, spec={"queues": [1]},
                                    status=JobStatus.DONE, finished_at=now)  # fmt: skip
    old = ExportJob.objects.create(created_by=researcher, spec={"queues": [1]},
                                   status=JobStatus.FAILED, error="long ago",
                                   finished_at=now - timedelta(days=30))  # fmt: skip
    trial = ModelTrialFactory(user=researcher, status=TrialStatus.QUEUED)
    debate = DebateFactory()
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    speech = debate.speeches.first()
    # A worker is writing it: it wrote a moment ago.
    Speech.objects.filter(pk=speech.pk).update(status=SpeechStatus.STREAMING, heartbeat_at=now)
    return {"failed": export, "running": running, "done": done, "old": old, "trial": trial,
            "speech": speech}  # fmt: skip


def test_every_app_with_jobs_registered_a_source():
    assert {source.name for source in job_sources()} >= {"exports", "trials", "speeches"}


def test_the_operations_page_lists_open_jobs_with_age_error_and_retry(jobs, admin_user):
    page = signed_in(admin_user).get(reverse("operations_home")).content.decode()
    assert f"Export {jobs['failed'].pk} (csv" in page
    assert "ValueError: the disk &lt;b&gt;is&lt;/b&gt; full" in page  # escaped, as all text
    assert f"Export {jobs['running'].pk} (" in page
    assert f"Export {jobs['done'].pk} (" not in page and "long ago" not in page
    assert f"Try {jobs['trial'].config.name}" in page
    assert f"debate {jobs['speech'].debate_id}" in page
    assert page.count('name="source" value="exports"') == 1  # running exports: no retry
    assert 'name="source" value="trials"' in page
    assert 'name="source" value="speeches"' not in page  # running: no retry
    assert "minute" in page  # the age


def test_an_admin_retries_a_failed_export(jobs, admin_user, django_capture_on_commit_callbacks):
    client = signed_in(admin_user)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("operations_job_retry"), {"source": "exports", "pk": jobs["failed"].pk}
        )
    assert response.status_code == 302 and len(callbacks) == 1
    jobs["failed"].refresh_from_db()
    assert (jobs["failed"].status, jobs["failed"].error) == (JobStatus.QUEUED, "")
    # Not retryable: a message says so and nothing changes.
    response = client.post(
        reverse("operations_job_retry"), {"source": "exports", "pk": jobs["done"].pk}, follow=True
    )
    assert "Only a failed or queued export can be retried." in response.content.decode()
    jobs["done"].refresh_from_db()
    assert jobs["done"].status == JobStatus.DONE


def test_retry_refuses_other_roles_the_wrong_method_and_bad_input(jobs, users):
    url = reverse("operations_job_retry")
    body = {"source": "exports", "pk": jobs["failed"].pk}
    for who in ("annotator", "researcher", "outsider"):
        assert signed_in(users[who]).post(url, body).status_code == 403
    admin = signed_in(users["admin"])
    assert admin.get(url).status_code == 405
    assert admin.post(url, {"source": "exports", "pk": 2**64}).status_code == 400
    assert (
        "No job source"
        in admin.post(url, {"source": "nope", "pk": 1}, follow=True).content.decode()
    )
    jobs["failed"].refresh_from_db()
    assert jobs["failed"].status == JobStatus.FAILED


def test_a_trial_whose_worker_fell_silent_is_failed_and_can_be_retried(
    researcher, django_capture_on_commit_callbacks
):
    from llm.services import model_trial_retry
    from llm.trial_worker import TRIAL_STALE_AFTER, model_trials_fail_stale

    now = timezone.now()
    dead = ModelTrialFactory(user=researcher)
    alive = ModelTrialFactory(user=researcher)
    ModelTrial.objects.filter(pk=dead.pk).update(
        status=TrialStatus.RUNNING, text="half", heartbeat_at=now - TRIAL_STALE_AFTER * 2
    )
    ModelTrial.objects.filter(pk=alive.pk).update(status=TrialStatus.RUNNING, heartbeat_at=now)
    assert model_trials_fail_stale(now=now) == 1
    assert model_trials_fail_stale(now=now) == 0
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == TrialStatus.FAILED and "worker stopped" in dead.error
    assert alive.status == TrialStatus.RUNNING
    with django_capture_on_commit_callbacks() as callbacks:
        model_trial_retry(trial_id=dead.pk)
    dead.refresh_from_db()
    assert (dead.status, dead.text, dead.error, len(callbacks)) == (TrialStatus.QUEUED, "", "", 1)


def retry_offered(page: str, source: str, pk: int) -> bool:
    return bool(
        re.search(
            rf'name="source" value="{source}">\s*<input type="hidden" name="pk" value="{pk}"', page
        )
    )


def test_a_running_speech_offers_no_retry_and_refuses_one_until_its_worker_falls_silent(
    jobs, admin_user, django_capture_on_commit_callbacks
):
    from debate.generation import SPEECH_STALE_AFTER

    speech = jobs["speech"]
    client = signed_in(admin_user)
    page = client.get(reverse("operations_home")).content.decode()
    assert f"debate {speech.debate_id}" in page and "running" in page
    assert not retry_offered(page, "speeches", speech.pk)
    # Posted anyway (an old page, a script): refused with the reason, and nothing starts.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            reverse("operations_job_retry"), {"source": "speeches", "pk": speech.pk}, follow=True
        )
    body = response.content.decode()
    assert "a worker is writing this one now" in body and "a second generation" in body
    assert callbacks == []
    before = Speech.objects.get(pk=speech.pk)
    assert (before.status, before.attempt) == (SpeechStatus.STREAMING, 0)
    # Silent for SPEECH_STALE_AFTER (what the sweeper restarts): offered, and it restarts.
    silent = timezone.now() - SPEECH_STALE_AFTER - timedelta(seconds=1)
    Speech.objects.filter(pk=speech.pk).update(heartbeat_at=silent)
    page = client.get(reverse("operations_home")).content.decode()
    assert retry_offered(page, "speeches", speech.pk)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("operations_job_retry"), {"source": "speeches", "pk": speech.pk})
    assert Speech.objects.get(pk=speech.pk).status == SpeechStatus.QUEUED
