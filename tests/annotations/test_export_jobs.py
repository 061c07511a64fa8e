import json
import signal
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotations.export_worker import (
    EXPORT_ATTEMPTS,
    EXPORT_STALE_AFTER,
    StaleExports,
    export_path,
    export_run,
    exports_requeue_stale,
)
from annotations.exports import ExportSpec
from annotations.models import ExportJob, JobStatus, Queue
from annotations.services import export_retry, export_start
from annotations.tasks import export_run_task, exports_requeue_stale_task
from tests.annotations.factories import labelled_queue
from tests.factories import UserFactory
from tests.helpers import signed_in, worker_start


@pytest.fixture
def queue(db):
    return labelled_queue()[0]


def started(user, queue, django_capture_on_commit_callbacks, **spec):
    with django_capture_on_commit_callbacks() as callbacks:
        job = export_start(user=user, spec=ExportSpec(queues=[queue.pk], **spec))
    assert len(callbacks) == 1  # the task is sent only once the job row is committed
    return job


def test_a_job_runs_queued_to_done_and_a_second_delivery_does_nothing(
    researcher, queue, django_capture_on_commit_callbacks
):
    job = started(researcher, queue, django_capture_on_commit_callbacks, format="trl")
    assert job.status == JobStatus.QUEUED
    export_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.rows_total, job.rows_done, job.percent) == (JobStatus.DONE, 9, 9, 100)
    path = export_path(job)
    assert len(path.read_text().splitlines()) == 8
    assert not path.with_suffix(".jsonl.part").exists()
    export_run(job_id=job.pk)  # redelivered: finds nothing to claim
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and export_path(job) == path


def test_a_job_whose_queue_vanished_fails_with_a_reason(
    researcher, queue, django_capture_on_commit_callbacks
):
    job = started(researcher, queue, django_capture_on_commit_callbacks)
    Queue.objects.filter(pk=queue.pk).delete()
    export_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "do not exist" in job.error


# --- pages ------------------------------------------------------------------------------------
def test_anonymous_and_wrong_roles_are_kept_out(queue, users, django_capture_on_commit_callbacks):
    job = started(users["researcher"], queue, django_capture_on_commit_callbacks)
    export_run(job_id=job.pk)
    gets = [
        reverse("annotations:export_list"),
        reverse("annotations:export_detail", args=[job.pk]),
        reverse("annotations:export_download", args=[job.pk]),
    ]
    post = reverse("annotations:export_create")
    for path in gets:
        assert Client().get(path)["Location"].startswith(reverse("login"))
    assert Client().post(post)["Location"].startswith(reverse("login"))
    for who in ("annotator", "outsider"):
        client = signed_in(users[who])
        for path in gets:
            assert client.get(path).status_code == 403, (who, path)
        assert (
            client.post(
                post, {"queues": [queue.pk], "format": "jsonl", "aggregation": "per_label"}
            ).status_code
            == 403
        )
    assert ExportJob.objects.count() == 1


def test_wrong_methods(researcher):
    client = signed_in(researcher)
    assert client.get(reverse("annotations:export_create")).status_code == 405
    assert client.post(reverse("annotations:export_list")).status_code == 405


def test_create_from_the_form_then_watch_and_download(
    researcher, queue, django_capture_on_commit_callbacks
):
    client = signed_in(researcher)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            reverse("annotations:export_create"),
            {
                "queues": [queue.pk],
                "format": "jsonl",
                "aggregation": "majority",
                "min_agreement": "0.5",
            },
        )
    job = ExportJob.objects.get()
    assert response["Location"] == reverse("annotations:export_detail", args=[job.pk])
    assert ExportSpec.model_validate(job.spec).min_agreement == 0.5
    html = client.get(reverse("annotations:export_detail", args=[job.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in html and "Queued" in html
    export_run(job_id=job.pk)
    fragment = client.get(
        reverse("annotations:export_detail", args=[job.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="job"')
    assert (
        "every 1s" not in fragment and 'aria-valuenow="100"' in fragment and "Download" in fragment
    )
    download = client.get(reverse("annotations:export_download", args=[job.pk]))
    assert download["Content-Disposition"].startswith("attachment")
    rows = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    download.close()
    assert [row["external_id"] for row in rows] == ["x0", "x2"]


def test_another_researchers_export_is_404_but_admins_see_it(
    researcher, admin_user, queue, django_capture_on_commit_callbacks
):
    job = started(researcher, queue, django_capture_on_commit_callbacks)
    export_run(job_id=job.pk)
    other = signed_in(UserFactory(username="other-researcher", role="researcher"))
    assert other.get(reverse("annotations:export_detail", args=[job.pk])).status_code == 404
    assert other.get(reverse("annotations:export_download", args=[job.pk])).status_code == 404
    assert f"#{job.pk}" not in other.get(reverse("annotations:export_list")).content.decode()
    download = signed_in(admin_user).get(reverse("annotations:export_download", args=[job.pk]))
    assert download.status_code == 200
    download.close()


def test_a_job_not_done_cannot_be_downloaded(researcher, queue, django_capture_on_commit_callbacks):
    job = started(researcher, queue, django_capture_on_commit_callbacks)
    assert (
        signed_in(researcher).get(reverse("annotations:export_download", args=[job.pk])).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"format": "trl", "aggregation": "per_label", "queues": "LIKERT"},
            "needs queues whose items compare two responses",
        ),
        ({"format": "xml", "aggregation": "per_label"}, "Select a valid choice"),
        (
            {"format": "jsonl", "aggregation": "per_label", "min_agreement": "1.5"},
            "less than or equal to 1",
        ),
        (
            {
                "format": "jsonl",
                "aggregation": "per_label",
                "since": "2026-01-02",
                "until": "2026-01-01",
            },
            "must be before",
        ),
        ({"format": "jsonl", "aggregation": "per_label", "queues": []}, "This field is required"),
    ],
)
def test_bad_export_requests_are_explained_and_start_nothing(researcher, queue, data, message):
    from tests.annotations.factories import likert, make_queue

    likert_queue = make_queue(kind="likert", items=likert(1))
    form = {"queues": [queue.pk]} | data
    if form["queues"] == "LIKERT":
        form["queues"] = [likert_queue.pk]
    response = signed_in(researcher).post(reverse("annotations:export_create"), form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ExportJob.objects.exists()


@pytest.mark.worker
def test_an_export_runs_on_a_real_worker(
    transactional_db, celery_worker_process, django_db_serialized_rollback
):
    researcher = UserFactory(username="exporter", role="researcher")
    queue, _ = labelled_queue()
    job = export_start(user=researcher, spec=ExportSpec(queues=[queue.pk], format="parquet"))
    deadline = time.monotonic() + 60
    while job.status not in (JobStatus.DONE, JobStatus.FAILED) and time.monotonic() < deadline:
        time.sleep(0.2)
        job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    assert export_path(job).stat().st_size > 0


# --- a worker that dies mid-export ----------------------------------------------------------
@pytest.mark.worker
def test_a_worker_killed_mid_export_leaves_the_job_re_run_not_running(
    transactional_db, celery_worker_process, django_db_serialized_rollback
):
    researcher = UserFactory(username="exporter", role="researcher")
    queue, _ = labelled_queue()
    job = ExportJob.objects.create(
        created_by=researcher, spec=ExportSpec(queues=[queue.pk], format="csv").model_dump()
    )
    doomed = worker_start(queues="kill-test", log_name="doomed-worker",
                          include="tests.worker_slow_export")  # fmt: skip
    try:
        export_run_task.apply_async((job.pk,), queue="kill-test")
        deadline = time.monotonic() + 120
        while job.status != JobStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.1)
            job.refresh_from_db()
        assert job.status == JobStatus.RUNNING and job.attempt == 1
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=20)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING  # what a dead worker leaves behind

    # Beat's sweep (its task, as beat runs it): not silent long enough yet. Once the worker has
    # been silent for EXPORT_STALE_AFTER, the job goes back to the queue and the task sends it
    # to the live worker, which runs it to the end.
    assert exports_requeue_stale_task() == 0
    silent = timezone.now() - EXPORT_STALE_AFTER - timedelta(seconds=1)
    ExportJob.objects.filter(pk=job.pk).update(heartbeat_at=silent)
    assert exports_requeue_stale_task() == 1
    job.refresh_from_db()
    assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE)
    # Generous: the shared worker may still be busy with work earlier tests left it.
    deadline = time.monotonic() + 300
    while job.status not in (JobStatus.DONE, JobStatus.FAILED) and time.monotonic() < deadline:
        time.sleep(0.2)
        job.refresh_from_db()
    assert (job.status, job.attempt, job.error) == (JobStatus.DONE, 2, "")
    assert export_path(job).read_bytes().startswith(b"queue,item_id")


def test_a_silent_export_is_started_again_then_failed_after_its_attempts(
    researcher, queue, monkeypatch
):
    sent: list[int] = []
    monkeypatch.setattr(export_run_task, "delay", sent.append)
    job = ExportJob.objects.create(created_by=researcher, spec={"queues": [queue.pk]})
    silent = timezone.now() - EXPORT_STALE_AFTER - timedelta(seconds=1)
    for attempt in range(1, EXPORT_ATTEMPTS + 1):
        ExportJob.objects.filter(pk=job.pk).update(
            status=JobStatus.RUNNING, attempt=attempt, heartbeat_at=silent
        )
        assert exports_requeue_stale_task() == 1
        assert exports_requeue_stale_task() == 0  # a second sweep finds nothing more
        job.refresh_from_db()
        if attempt < EXPORT_ATTEMPTS:
            assert job.status == JobStatus.QUEUED and sent[-1] == job.pk
    assert job.status == JobStatus.FAILED and "stopped 3 times" in job.error
    assert len(sent) == EXPORT_ATTEMPTS - 1  # the task sends what the sweep requeued, once
    # A beating worker is left alone.
    now = timezone.now()
    ExportJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, heartbeat_at=now)
    assert exports_requeue_stale(now=now) == StaleExports(requeued=(), failed=0)


def test_a_worker_given_up_on_finishes_nothing_and_leaves_no_file(researcher, queue, monkeypatch):
    job = ExportJob.objects.create(created_by=researcher, spec={"queues": [queue.pk]})
    write = export_run.__globals__["export_write"]

    def stalls_then_writes(plan, out, *, on_labels=None):
        # While this worker stalls, the sweep gives up on it and queues the job again.
        swept = exports_requeue_stale(now=timezone.now() + timedelta(hours=1))
        assert swept == StaleExports(requeued=(job.pk,), failed=0)
        return write(plan, out, on_labels=on_labels)

    monkeypatch.setitem(export_run.__globals__, "export_write", stalls_then_writes)
    export_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.file_name, job.attempt) == (JobStatus.QUEUED, "", 1)
    exports_dir = export_path(job).parent
    assert not list(exports_dir.glob(f"{job.pk}-*"))


def test_a_failed_export_can_be_retried(researcher, queue, django_capture_on_commit_callbacks):
    job = ExportJob.objects.create(
        created_by=researcher, spec={"queues": [queue.pk]}, status=JobStatus.FAILED,
        error="boom", attempt=3,
    )  # fmt: skip
    with django_capture_on_commit_callbacks() as callbacks:
        export_retry(job_id=job.pk)
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert (job.status, job.error, job.attempt) == (JobStatus.QUEUED, "", 0)
    export_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    with pytest.raises(ValidationError, match="Only a failed or queued export"):
        export_retry(job_id=job.pk)


def test_the_page_and_the_api_send_the_same_file_under_the_same_name(
    researcher, queue, django_capture_on_commit_callbacks
):
    from tests.helpers import Api

    job = started(researcher, queue, django_capture_on_commit_callbacks, format="csv")
    export_run(job_id=job.pk)
    page = signed_in(researcher).get(reverse("annotations:export_download", args=[job.pk]))
    api = Api(researcher).get(f"/exports/{job.pk}/download")
    assert page.status_code == api.status_code == 200
    assert page["Content-Disposition"] == api["Content-Disposition"]
    assert f'filename="arbiter-labels-{job.pk}-csv.csv"' in api["Content-Disposition"]
    assert b"".join(page.streaming_content) == b"".join(api.streaming_content)
    # Someone else's job: a 404 from both, from the same selector.
    other = UserFactory(username="other-researcher", role="researcher")
    assert (
        signed_in(other).get(reverse("annotations:export_download", args=[job.pk])).status_code
        == 404
    )
    assert Api(other).get(f"/exports/{job.pk}/download").status_code == 404
