import json
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotations.export_worker import export_run
from annotations.models import ApiToken, ExportJob, Item, Label
from annotations.services import api_token_create
from tests.annotations.factories import labelled_queue, make_queue, pairwise, pairwise_gold
from tests.helpers import Api


@pytest.fixture
def queue(annotator, admin_user):
    return make_queue(name="api queue", members=[annotator], items=pairwise(3), labels_per_item=1)


def label(api, queue, lease, value=None, request_id=None):
    return api.post(
        f"/queues/{queue.pk}/labels",
        {
            "assignment_id": lease["assignment_id"],
            "value": value or {"choice": "a"},
            "time_spent_ms": 900,
            "client_request_id": str(request_id or uuid.uuid4()),
        },
    )


# --- auth -------------------------------------------------------------------------------------
def test_no_token_or_a_bad_one_is_401_json(queue, annotator):
    for api in (Api(), Api(token="arb_nope")):
        response = api.post(f"/queues/{queue.pk}/next")
        assert response.status_code == 401
        assert response.json() == {"detail": "Unauthorized", "errors": []}


def test_a_token_is_stored_only_as_a_digest(annotator):
    token = api_token_create(user=annotator, name="laptop")
    row = ApiToken.objects.get()
    assert token not in (row.digest, row.name) and len(row.digest) == 64
    assert Api(token=token).get("/queues/").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_inactive_users_tokens_stop_working(annotator):
    api = Api(annotator)
    annotator.is_active = False
    annotator.save()
    assert api.get("/queues/").status_code == 401


def test_roles_are_checked(queue, users):
    outsider, researcher = Api(users["outsider"]), Api(users["researcher"])
    assert outsider.get("/queues/").status_code == 403
    assert outsider.post(f"/queues/{queue.pk}/next").json() == {
        "detail": "This needs the annotator role.",
        "errors": [],
    }
    assert researcher.post(f"/queues/{queue.pk}/next").status_code == 403
    annotator = Api(users["annotator"])
    upload = SimpleUploadedFile(
        "items.jsonl", b'{"prompt": "p", "response_a": "a", "response_b": "b"}\n'
    )
    assert annotator.post(f"/queues/{queue.pk}/items", data={"file": upload}).status_code == 403
    assert annotator.post("/exports/", {"queues": [queue.pk]}).status_code == 403
    assert annotator.get("/exports/1").status_code == 403
    assert Item.objects.count() == 3 and not ExportJob.objects.exists()


def test_wrong_method_is_405(queue, annotator):
    assert Api(annotator).get(f"/queues/{queue.pk}/next").status_code == 405


# --- labelling --------------------------------------------------------------------------------
def test_next_submit_undo_skip_round_trip(queue, annotator):
    api = Api(annotator)
    assert [q["name"] for q in api.get("/queues/").json()] == ["api queue"]
    lease = api.post(f"/queues/{queue.pk}/next").json()
    assert lease["payload"] == {
        "prompt": "prompt 0",
        "response_a": "answer A0",
        "response_b": "answer B0",
        "system": "",
    }
    assert lease["keys"]["t"] == {"choice": "tie"}
    assert api.post(f"/queues/{queue.pk}/next").json()["assignment_id"] == lease["assignment_id"]
    request_id = uuid.uuid4()
    first = label(api, queue, lease, request_id=request_id)
    assert first.status_code == 201
    retry = label(api, queue, lease, request_id=request_id)
    assert retry.status_code == 200 and retry.json() == first.json()
    assert Label.objects.count() == 1
    back = api.post(f"/queues/{queue.pk}/undo")
    assert back.status_code == 200 and back.json()["item_id"] == lease["item_id"]
    assert not Label.objects.exists()
    assert (
        api.post(
            f"/queues/{queue.pk}/skip", {"assignment_id": back.json()["assignment_id"]}
        ).status_code
        == 204
    )
    assert api.post(f"/queues/{queue.pk}/next").json()["item_id"] != lease["item_id"]


def test_skipped_items_come_back_when_asked_once_nothing_else_is_left(annotator):
    queue = make_queue(members=[annotator], items=pairwise(2))
    api = Api(annotator)
    skipped = api.post(f"/queues/{queue.pk}/next").json()
    api.post(f"/queues/{queue.pk}/skip", {"assignment_id": skipped["assignment_id"]})
    other = api.post(f"/queues/{queue.pk}/next?revisit_skipped=true").json()
    assert other["item_id"] != skipped["item_id"]  # the item not skipped comes first
    label(api, queue, other)
    assert api.post(f"/queues/{queue.pk}/next").status_code == 204
    back = api.post(f"/queues/{queue.pk}/next?revisit_skipped=true")
    assert back.status_code == 200 and back.json()["item_id"] == skipped["item_id"]
    unknown = api.post(f"/queues/{queue.pk}/next?revisit=1")
    assert unknown.status_code == 422 and "revisit" in json.dumps(unknown.json())


@pytest.mark.parametrize("sent", [{}, {"time_spent_ms": None}])
def test_a_label_sent_without_a_time_stores_it_as_unknown(queue, annotator, sent):
    api = Api(annotator)
    lease = api.post(f"/queues/{queue.pk}/next").json()
    body = {"assignment_id": lease["assignment_id"], "value": {"choice": "a"},
            "client_request_id": str(uuid.uuid4())} | sent  # fmt: skip
    assert api.post(f"/queues/{queue.pk}/labels", body).status_code == 201
    assert Label.objects.get().time_spent_ms is None


def test_the_end_of_the_queue_is_204(annotator):
    queue = make_queue(members=[annotator], items=pairwise(1))
    api = Api(annotator)
    label(api, queue, api.post(f"/queues/{queue.pk}/next").json())
    response = api.post(f"/queues/{queue.pk}/next")
    assert response.status_code == 204 and response.content == b""


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"value": {"choice": "c"}}, 422, "value"),
        ({"value": {"rating": 3}}, 409, "Not a pairwise label"),
        ({"client_request_id": "nope"}, 422, "client_request_id: Input should be a valid UUID"),
        ({"time_spent_ms": -1}, 422, "time_spent_ms: Input should be greater than or equal to 0"),
        ({"assignment_id": 999999}, 409, "not assigned to you"),
    ],
)
def test_bad_submits_are_4xx_json_and_change_nothing(queue, annotator, body, status, needle):
    api = Api(annotator)
    lease = api.post(f"/queues/{queue.pk}/next").json()
    payload = {
        "assignment_id": lease["assignment_id"],
        "value": {"choice": "a"},
        "time_spent_ms": 1,
        "client_request_id": str(uuid.uuid4()),
    }
    response = api.post(f"/queues/{queue.pk}/labels", payload | body)
    assert response.status_code == status
    assert needle in json.dumps(response.json())
    assert not Label.objects.exists()


def test_malformed_json_is_a_4xx(queue, annotator):
    api = Api(annotator)
    response = api.client.post(
        f"/api/queues/{queue.pk}/labels",
        "{not json",
        content_type="application/json",
        **api._headers(),
    )
    assert 400 <= response.status_code < 500
    assert "detail" in response.json()


def test_another_queue_or_someone_elses_lease_is_refused(queue, annotator, annotator2):
    other = make_queue(members=[annotator2], items=pairwise(1))
    assert Api(annotator).post(f"/queues/{other.pk}/next").status_code == 404
    lease = Api(annotator2).post(f"/queues/{other.pk}/next").json()
    mine = Api(annotator)
    assert label(mine, queue, lease).status_code == 409
    assert (
        mine.post(f"/queues/{queue.pk}/skip", {"assignment_id": lease["assignment_id"]}).status_code
        == 409
    )
    assert not Label.objects.exists()


def test_undo_with_nothing_to_undo_is_409(queue, annotator):
    response = Api(annotator).post(f"/queues/{queue.pk}/undo")
    assert response.status_code == 409 and "Nothing to undo" in response.json()["detail"]


def test_annotators_never_get_gold_flags_or_other_labels(annotator, annotator2):
    queue = make_queue(
        members=[annotator, annotator2],
        items=pairwise(2) + pairwise_gold(1),
        gold_rate=0.5,
        labels_per_item=2,
    )
    other = Api(annotator2)
    label(other, queue, other.post(f"/queues/{queue.pk}/next").json(), value={"choice": "both_bad"})
    api = Api(annotator)
    seen = []
    while (response := api.post(f"/queues/{queue.pk}/next")).status_code == 200:
        seen.append(response.content.decode())
        seen.append(label(api, queue, response.json()).content.decode())
    assert any("question 0" in body for body in seen)  # the gold item did come
    for body in seen:
        data = json.loads(body)
        data.pop("keys", None)  # the queue's key map names every label value
        text = json.dumps(data)
        assert "gold" not in text.lower() and "both_bad" not in text and "annotator2" not in text


# --- import and export ------------------------------------------------------------------------
def test_import_by_api(queue, researcher):
    api = Api(researcher)
    good = SimpleUploadedFile(
        "x.jsonl", b'{"prompt": "p", "response_a": "a", "response_b": "b"}\n' * 2
    )
    response = api.post(f"/queues/{queue.pk}/items", data={"file": good})
    assert response.status_code == 201 and response.json() == {"imported": 2}
    bad = SimpleUploadedFile("x.csv", b"prompt,response_a,response_b\np,a,b\np,a,\n")
    response = api.post(f"/queues/{queue.pk}/items", data={"file": bad})
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Nothing was imported.",
        "errors": [{"field": "file", "line": 3, "message": "response_b: Field required"}],
    }
    unnamed = SimpleUploadedFile("x.txt", b"{}")
    assert (
        "Name the format (jsonl or csv)"
        in api.post(f"/queues/{queue.pk}/items", data={"file": unnamed}).json()["detail"]
    )
    assert (
        api.post(
            "/queues/999/items", data={"file": SimpleUploadedFile("x.jsonl", b"{}")}
        ).status_code
        == 404
    )
    assert Item.objects.filter(queue=queue).count() == 5


def test_export_by_api(researcher, django_capture_on_commit_callbacks):
    queue, _ = labelled_queue()
    api = Api(researcher)
    with django_capture_on_commit_callbacks(execute=False):
        response = api.post(
            "/exports/", {"queues": [queue.pk], "format": "trl", "aggregation": "majority"}
        )
    assert response.status_code == 202
    job = response.json()
    assert (job["status"], job["download_url"]) == ("queued", None)
    export_run(job_id=job["id"])
    status = api.get(f"/exports/{job['id']}").json()
    assert status["status"] == "done" and status["percent"] == 100
    assert api.post("/exports/", {"queues": [queue.pk], "format": "xml"}).status_code == 422
    assert api.post("/exports/", {"queues": [999]}).json() == {
        "detail": "Some of those queues do not exist.",
        "errors": [],
    }
    # Last: closing a streamed response ends the request, which closes the test's connection.
    download = api.client.get(status["download_url"], **api._headers())
    rows = [json.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    download.close()
    assert [(row["chosen"], row["rejected"]) for row in rows] == [("A0", "B0"), ("B2", "A2")]


def test_another_researchers_export_is_404(researcher, django_capture_on_commit_callbacks):
    from tests.factories import UserFactory

    queue, _ = labelled_queue()
    with django_capture_on_commit_callbacks(execute=False):
        job = Api(researcher).post("/exports/", {"queues": [queue.pk]}).json()
    other = Api(UserFactory(username="rival", role="researcher"))
    assert other.get(f"/exports/{job['id']}").status_code == 404
    assert other.get(f"/exports/{job['id']}/download").status_code == 404


def test_openapi_docs_are_served_without_a_cdn(db):
    client = Client()
    schema = client.get("/api/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/queues/{queue_id}/next" in paths and "/api/exports/" in paths
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html and "cdn" not in html
