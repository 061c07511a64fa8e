import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from annotations.export_worker import export_path, export_run, exports_expire
from annotations.exports import ExportSpec
from annotations.models import ExportJob, JobStatus
from annotations.services import export_start
from annotations.tasks import exports_expire_task
from tests.annotations.factories import make_queue, pairwise
from tests.helpers import PROJECT_DIR, Api, child_environment, signed_in

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.EXPORT_RETENTION_DAYS = 7
    return tmp_path


def finished_export(user, django_capture_on_commit_callbacks, *, age: timedelta) -> ExportJob:
    queue = make_queue(items=pairwise(1))
    with django_capture_on_commit_callbacks(execute=False):
        job = export_start(user=user, spec=ExportSpec(queues=[queue.pk]))
    export_run(job_id=job.pk)
    ExportJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - age)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and export_path(job).is_file()
    return job


PROBE = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from django.conf import settings
print(settings.EXPORT_RETENTION_DAYS)
"""


@pytest.mark.parametrize(("value", "days"), [(None, 7), ("14", 14), ("0", None)])
def test_the_setting_is_read_from_the_environment(value, days):
    env = {k: v for k, v in child_environment().items() if k != "EXPORT_RETENTION_DAYS"}
    if value is not None:
        env["EXPORT_RETENTION_DAYS"] = value
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=PROJECT_DIR, capture_output=True, text=True,
        env=env, timeout=60,
    )  # fmt: skip
    if days is None:
        assert result.returncode != 0
        assert "EXPORT_RETENTION_DAYS=0 is below the minimum of 1" in result.stderr
    else:
        assert result.stdout.strip() == str(days), result.stderr


def test_beat_runs_the_task_daily():
    entry = django_settings.CELERY_BEAT_SCHEDULE["exports-expire"]
    assert entry["task"] == exports_expire_task.name
    assert entry["schedule"].remaining_estimate(timezone.now()) <= DAY


def test_only_old_finished_exports_lose_their_files(researcher, django_capture_on_commit_callbacks):
    old = finished_export(researcher, django_capture_on_commit_callbacks, age=8 * DAY)
    recent = finished_export(researcher, django_capture_on_commit_callbacks, age=6 * DAY)
    old_path, recent_path = export_path(old), export_path(recent)
    queued = ExportJob.objects.create(
        created_by=researcher, spec=ExportSpec(queues=[1]).model_dump(mode="json")
    )
    ExportJob.objects.filter(pk=queued.pk).update(created_at=timezone.now() - 30 * DAY)
    failed = ExportJob.objects.create(
        created_by=researcher,
        spec=ExportSpec(queues=[1]).model_dump(mode="json"),
        status=JobStatus.FAILED,
        error="ValueError: boom",
        finished_at=timezone.now() - 30 * DAY,
    )

    assert exports_expire() == 1

    assert not old_path.exists() and recent_path.is_file()
    old.refresh_from_db()
    assert (old.status, old.file_name) == (JobStatus.DONE, "")
    assert old.error.startswith("Expired: the file was deleted 7 days after")
    recent.refresh_from_db()
    assert recent.file_name and recent.error == ""
    failed.refresh_from_db()
    assert failed.error == "ValueError: boom"
    queued.refresh_from_db()
    assert queued.status == JobStatus.QUEUED and queued.error == ""


def test_running_it_twice_is_harmless(researcher, django_capture_on_commit_callbacks):
    job = finished_export(researcher, django_capture_on_commit_callbacks, age=10 * DAY)
    assert exports_expire_task() == 1
    job.refresh_from_db()
    after_first = (job.file_name, job.error)
    assert exports_expire_task() == 0
    job.refresh_from_db()
    assert (job.file_name, job.error) == after_first


def test_a_file_already_gone_still_marks_the_job(researcher, django_capture_on_commit_callbacks):
    job = finished_export(researcher, django_capture_on_commit_callbacks, age=10 * DAY)
    export_path(job).unlink()
    assert exports_expire() == 1
    job.refresh_from_db()
    assert job.file_name == "" and job.error.startswith("Expired")


def test_the_retention_follows_the_setting(
    settings, researcher, django_capture_on_commit_callbacks
):
    settings.EXPORT_RETENTION_DAYS = 30
    job = finished_export(researcher, django_capture_on_commit_callbacks, age=10 * DAY)
    assert exports_expire() == 0
    assert exports_expire(now=timezone.now() + 21 * DAY) == 1
    job.refresh_from_db()
    assert "30 days" in job.error and not export_path(job).is_file()


def test_stale_partial_files_are_swept_but_live_ones_kept(media_root, db):
    exports = media_root / "exports"
    exports.mkdir()
    stale, live = exports / "3-dead.jsonl.part", exports / "4-writing.jsonl.part"
    for path in (stale, live):
        path.write_text("{}\n")
    week_and_a_day_ago = (timezone.now() - 8 * DAY).timestamp()
    os.utime(stale, (week_and_a_day_ago, week_and_a_day_ago))
    assert exports_expire() == 0
    assert not stale.exists() and live.exists()


def test_the_pages_say_expired_and_the_download_is_410(
    researcher, django_capture_on_commit_callbacks
):
    job = finished_export(researcher, django_capture_on_commit_callbacks, age=8 * DAY)
    client = signed_in(researcher)
    download = reverse("annotations:export_download", args=[job.pk])
    before = client.get(reverse("annotations:export_detail", args=[job.pk])).content.decode()
    assert f'href="{download}"' in before
    exports_expire()

    detail = client.get(reverse("annotations:export_detail", args=[job.pk])).content.decode()
    assert "Expired: the file was deleted 7 days after" in detail
    assert f'href="{download}"' not in detail
    listing = client.get(reverse("annotations:export_list")).content.decode()
    assert "Expired · " in listing
    response = client.get(download)
    assert response.status_code == 410
    assert "Start the export again" in response.content.decode()


def test_the_api_says_expired_and_the_download_is_410(
    researcher, django_capture_on_commit_callbacks
):
    job = finished_export(researcher, django_capture_on_commit_callbacks, age=8 * DAY)
    api = Api(researcher)
    before = api.get(f"/exports/{job.pk}").json()
    assert before["expired"] is False and before["download_url"]
    exports_expire()

    status = api.get(f"/exports/{job.pk}").json()
    assert (status["status"], status["expired"], status["download_url"]) == ("done", True, None)
    assert status["error"].startswith("Expired")
    response = api.get(f"/exports/{job.pk}/download")
    assert response.status_code == 410
    assert response.json()["detail"].startswith("Expired: the file was deleted 7 days after")
