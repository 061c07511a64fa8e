"""The document config/api.py serves, and what the server does against it."""

from django.test import Client

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
