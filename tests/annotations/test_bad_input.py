"""Each bad input the fuzzer and hand-made clients found gives the same clear 4xx on SQLite and
on PostgreSQL (this module runs in both CI passes) and stores nothing."""

import json
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.models import ExportJob, Item, Label
from tests.annotations.factories import make_queue, pairwise
from tests.helpers import Api, signed_in

BEYOND_64_BITS = 2**64
NUL = "\u0000"


@pytest.fixture
def queue(annotator):
    return make_queue(name="bad input", members=[annotator], items=pairwise(2), kind="pairwise")


def _label_body(lease_id, **changes):
    body = {
        "assignment_id": lease_id,
        "value": {"choice": "a"},
        "time_spent_ms": 1,
        "client_request_id": str(uuid.uuid4()),
    }
    return body | changes


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"queues": [BEYOND_64_BITS]}, "queues.0"),
        ({"queues": [2**63]}, "queues.0"),
        ({"queues": [0]}, "queues.0"),
        ({"queues": [-1]}, "queues.0"),
        ({"queues": []}, "queues"),
        ({"queues": [1], "format": "xlsx"}, "format"),
        ({"queues": [1], "surprise": 1}, "surprise"),
        ({"queues": [1], "format": f"csv{NUL}"}, "format"),
    ],
)
def test_bad_export_specs_are_422_naming_the_field(researcher, body, field):
    response = Api(researcher).post("/exports/", body)
    assert response.status_code == 422, response.content
    assert field in [problem["field"] for problem in response.json()["errors"]]
    assert response.json()["detail"].startswith(field)
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"assignment_id": BEYOND_64_BITS}, "assignment_id"),
        ({"assignment_id": 0}, "assignment_id"),
        ({"value": {"choice": f"a{NUL}"}}, "value.choice"),
        ({"value": {"choice": "\ud800"}}, "value.choice"),
        ({"value": {"choice": "c"}}, "value"),
        ({"client_request_id": NUL}, "client_request_id"),
        ({"time_spent_ms": -1}, "time_spent_ms"),
    ],
)
def test_bad_labels_are_422_naming_the_field(queue, annotator, changes, field):
    api = Api(annotator)
    lease = api.post(f"/queues/{queue.pk}/next").json()
    response = api.post(
        f"/queues/{queue.pk}/labels", _label_body(lease["assignment_id"], **changes)
    )
    assert response.status_code == 422, response.content
    fields = [problem["field"] for problem in response.json()["errors"]]
    assert any(name == field or name.startswith(f"{field}.") for name in fields), fields
    assert not Label.objects.exists()


def test_a_label_of_another_kind_is_a_409(queue, annotator):
    api = Api(annotator)
    lease = api.post(f"/queues/{queue.pk}/next").json()
    response = api.post(
        f"/queues/{queue.pk}/labels", _label_body(lease["assignment_id"], value={"rating": 3})
    )
    assert response.status_code == 409
    assert "Not a pairwise label" in response.json()["detail"]


def test_a_path_id_beyond_64_bits_is_422(annotator, researcher):
    assert Api(annotator).post(f"/queues/{BEYOND_64_BITS}/next").status_code == 422
    response = Api(researcher).get(f"/exports/{BEYOND_64_BITS}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "job_id"


def test_a_query_string_with_a_nul_is_422(queue, researcher):
    upload = SimpleUploadedFile("x.jsonl", b'{"prompt": "p", "response_a": "a", "response_b": "b"}')
    response = Api(researcher).post(
        f"/queues/{queue.pk}/items?format=csv%00", data={"file": upload}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "format"


def test_malformed_json_is_a_400_saying_where(queue, annotator):
    api = Api(annotator)
    response = api.client.post(
        f"/api/queues/{queue.pk}/labels", '{"assignment_id": 1,', content_type="application/json",
        **api._headers(),
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["detail"].startswith("body: not valid JSON")


# --- imports: the API and the page refuse the same rows with the same messages ----------------
ROW = {"prompt": "p", "response_a": "a", "response_b": "b"}


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (json.dumps(ROW | {"prompt": f"p{NUL}q"}), "x.jsonl", "line 1: prompt: contains a NUL"),
        (json.dumps(ROW | {"response_a": "\ud800"}), "x.jsonl", "line 1: response_a: "),
        (json.dumps(ROW | {"prompt": " \n\t "}), "x.jsonl", "must not be empty or only whitespace"),
        (json.dumps(ROW | {"external_id": f"e{NUL}"}), "x.jsonl", "line 1: external_id: contains"),
        ("prompt,response_a,response_b\np\x00q,a,b\n", "x.csv", "line 2: prompt: contains a NUL"),
        ("prompt,response_a,response_b\n   ,a,b\n", "x.csv", "line 2: prompt: must not be empty"),
    ],
)
def test_bad_text_in_an_import_is_refused_by_line(queue, researcher, data, name, message):
    before = Item.objects.count()
    upload = SimpleUploadedFile(name, data.encode("utf-8", "surrogatepass"))
    response = Api(researcher).post(f"/queues/{queue.pk}/items", data={"file": upload})
    assert response.status_code == 400
    lines = [f"line {error['line']}: {error['message']}" for error in response.json()["errors"]]
    assert any(line.startswith(message) or message in line for line in lines), lines
    assert all("Value error" not in line for line in lines)
    page = signed_in(researcher).post(
        f"/queues/{queue.pk}/import/",
        {"file": SimpleUploadedFile(name, data.encode("utf-8", "surrogatepass"))},
    )
    assert page.status_code == 400  # the form again, with the same errors
    assert ":".join(message.split(":")[:2]) in page.content.decode()
    assert Item.objects.count() == before
