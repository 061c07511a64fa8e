"""The document config/api.py serves, and what the server does against it."""

from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotations.exports import ExportSpec
from annotations.models import ExportJob
from debate.models import DebateBatch
from tests.annotations.factories import make_queue, pairwise
from tests.debate.research_factories import BankQuestionFactory, QuestionBankFactory
from tests.factories import ModelConfigFactory
from tests.helpers import Api


def test_a_413_is_documented_exactly_where_the_operation_reads_a_body(db):
    document = Client().get("/api/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            reads_body = "requestBody" in operation
            assert ("413" in operation["responses"]) == reads_body, f"{method.upper()} {path}"


def test_a_body_sent_to_an_operation_that_takes_none_is_never_read(annotator, researcher, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    big = {"padding": "x" * 10_000}
    # The view's own answer, not a 413.
    assert Api(annotator).post("/queues/999/undo", big).status_code == 404
    assert Api(researcher).post("/trees/", big).status_code == 413


# --- strict input: the document's types, and nothing the document refuses -------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"queues": [True]}, "queues.0"),  # a boolean is not an id
        ({"queues": ["1"]}, "queues.0"),  # nor is a string
        ({"queues": [1.5]}, "queues.0"),  # nor a fraction
        ({"queues": [1], "since": 0}, "since"),  # a number is not a date
        ({"queues": [1], "since": "1700000000"}, "since"),  # nor digits in a string
        ({"queues": [1], "since": "2024-01-31T09:00:00"}, "since"),  # a time needs its offset
        ({"queues": [1], "include_gold": 1}, "include_gold"),  # a number is not a boolean
        ({"queues": [1], "min_agreement": "0.5"}, "min_agreement"),  # a string not a number
    ],
)
def test_an_export_spec_the_document_refuses_is_refused(researcher, body, field):
    make_queue(name="strict")  # an id 1 exists: `true` read as 1 would export it
    response = Api(researcher).post("/exports/", body)
    assert response.status_code == 422, response.content
    assert [problem["field"] for problem in response.json()["errors"]] == [field]
    assert not ExportJob.objects.exists()


def test_a_valid_export_spec_with_a_time_is_accepted(
    researcher, django_capture_on_commit_callbacks
):
    queue = make_queue(name="strict")
    with django_capture_on_commit_callbacks(execute=False):
        response = Api(researcher).post(
            "/exports/", {"queues": [queue.pk], "since": "2024-01-31T09:00:00+01:00"}
        )
    assert response.status_code == 202, response.content
    assert ExportSpec.model_validate(ExportJob.objects.get().spec).since == datetime(
        2024, 1, 31, 8, tzinfo=UTC
    )


def test_a_whole_float_is_the_integer_the_document_says_it_is(
    researcher, django_capture_on_commit_callbacks
):
    # OpenAPI 3.1's JSON Schema (draft 2020-12) counts 2.0 as an integer; the fuzzer sends it as
    # valid data. Text is another matter: `?limit=5.0` is refused (above).
    queue = make_queue(name="whole")
    with django_capture_on_commit_callbacks(execute=False):
        response = Api(researcher).post("/exports/", {"queues": [float(queue.pk)]})
    assert response.status_code == 202, response.content
    assert ExportJob.objects.get().spec["queues"] == [queue.pk]


def test_a_batch_with_a_boolean_for_a_number_is_refused(researcher):
    config = ModelConfigFactory()
    bank = QuestionBankFactory()
    BankQuestionFactory(bank=bank)
    spec = {"debater_a_config_id": config.pk, "count": 1, "quote_char_limit": False}
    body = {"name": "x", "bank_id": bank.pk, "spec": spec, "llm_judge_config_id": config.pk}
    response = Api(researcher).post("/debates/batches/", body)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "spec.quote_char_limit", "message": "Input should be a valid integer"}
    ]
    assert not DebateBatch.objects.exists()


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("?limit=5", 200, None),
        ("?limit=%2B5", 200, None),
        ("?limit=5.0", 422, "limit"),  # text read as its type, and only as that type
        ("?limit=5_0", 422, "limit"),
        ("?limit=%205", 422, "limit"),
        ("?limit=true", 422, "limit"),
        ("?batch=1.5", 422, "batch"),
        ("?surprise=1", 422, "surprise"),  # a key the operation does not declare
    ],
)
def test_query_text_is_read_as_its_documented_type_and_no_more(researcher, query, status, field):
    response = Api(researcher).get(f"/debates/{query}")
    assert response.status_code == status, response.content
    if field:
        assert [problem["field"] for problem in response.json()["errors"]] == [field]


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?paper_only=true", 200),
        ("?paper_only=false", 200),
        ("?paper_only=yes", 422),
        ("?paper_only=1", 422),
        ("?date_from=2024-01-31", 200),
        ("?date_from=0", 422),
        ("?date_from=2024-02-30", 422),
    ],
)
def test_query_booleans_and_dates_are_written_as_the_document_says(researcher, query, status):
    response = Api(researcher).get(f"/debates/analytics/{query}")
    assert response.status_code == status, response.content


def test_a_path_id_written_as_a_float_is_refused(researcher):
    response = Api(researcher).get("/exports/1.0")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "job_id"


def test_nan_is_not_json(researcher):
    api = Api(researcher)
    response = api.client.post(
        "/api/exports/", '{"queues": [1], "min_agreement": NaN}',
        content_type="application/json", **api._headers(),
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json() == {"detail": "body: not valid JSON (NaN is not a JSON number)",
                               "errors": []}  # fmt: skip


# --- roles before bodies ----------------------------------------------------------------------
def test_a_role_is_checked_before_the_body_is_read(users):
    queue = make_queue(name="roles", members=[users["annotator"]])
    nonsense = {"queues": "all of them", "surprise": True}
    for who, method, path in [
        ("annotator", "post", "/exports/"),
        ("annotator", "post", "/debates/import"),
        ("annotator", "post", "/debates/batches/"),
        ("annotator", "post", "/trees/"),
        ("annotator", "get", "/debates/?limit=nope"),
        ("researcher", "post", f"/queues/{queue.pk}/labels"),
        ("researcher", "post", f"/queues/{queue.pk}/skip"),
        ("outsider", "post", "/reward-models/1/retrain"),
    ]:
        api = Api(users[who])
        response = api.get(path) if method == "get" else api.post(path, nonsense)
        assert response.status_code == 403, (who, path, response.content)
        assert response.json()["detail"].startswith("This needs the "), path
    assert not ExportJob.objects.exists()


# --- one 4xx shape ----------------------------------------------------------------------------
def _problem(response) -> dict:
    body = response.json()
    assert set(body) == {"detail", "errors"} and isinstance(body["detail"], str), body
    for problem in body["errors"]:
        assert set(problem) in ({"field", "message"}, {"field", "line", "message"}), problem
        assert "Value error" not in problem["message"], problem
    return body


def test_every_4xx_has_one_shape(users, settings):
    queue = make_queue(name="shapes", members=[users["annotator"]], items=pairwise(1))
    researcher, annotator = Api(users["researcher"]), Api(users["annotator"])
    bad_rows = SimpleUploadedFile("x.jsonl", b'{"prompt": "p"}\n{"prompt": ""}\n')
    responses = {
        400: researcher.post(f"/queues/{queue.pk}/items", data={"file": bad_rows}),
        401: Api(token="arb_nope").get("/queues/"),
        403: annotator.get("/debates/"),
        404: researcher.get("/exports/999999"),
        405: annotator.get(f"/queues/{queue.pk}/next"),
        409: annotator.post(f"/queues/{queue.pk}/undo"),
        422: researcher.post("/exports/", {"queues": [True]}),
    }
    for status, response in responses.items():
        assert response.status_code == status, (status, response.content)
        _problem(response)
    rows = responses[400].json()["errors"]
    assert [(row["field"], row["line"]) for row in rows] == [("file", 1), ("file", 2)]
    assert rows[0]["message"].startswith("response_a: Field required")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    assert _problem(researcher.post("/exports/", {"queues": [queue.pk]}))["errors"] == []


def test_every_4xx_is_documented_with_the_one_shape(db):
    document = Client().get("/api/openapi.json").json()
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            refusals = {code: answer for code, answer in operation["responses"].items()
                        if code.startswith("4")}  # fmt: skip
            assert {"400", "401", "422"} <= set(refusals), f"{method} {path}"
            for code, answer in refusals.items():
                assert answer["content"]["application/json"]["schema"] == problem, (path, code)
    fields = document["components"]["schemas"]["FieldError"]
    assert fields["required"] == ["field", "message"] and "line" in fields["properties"]


# --- "not ready" is its own status ------------------------------------------------------------
def test_downloading_an_export_that_has_not_run_is_409_not_ready(researcher):
    queue = make_queue(name="waiting")
    job = ExportJob.objects.create(
        created_by=researcher, spec=ExportSpec(queues=[queue.pk]).model_dump(mode="json")
    )
    response = Api(researcher).get(f"/exports/{job.pk}/download")
    assert response.status_code == 409
    assert _problem(response)["detail"].startswith("export not ready: it is queued")
    assert Api(researcher).get(f"/exports/{job.pk + 1}/download").status_code == 404
    document = Client().get("/api/openapi.json").json()
    assert "409" in document["paths"]["/api/exports/{job_id}/download"]["get"]["responses"]
