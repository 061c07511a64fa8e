"""The API's own ASGI handler (config/api_asgi.py), driven through the real application."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator

from annotations.export_worker import export_path
from annotations.exports import ExportFormat, ExportSpec
from annotations.models import ExportJob, JobStatus
from annotations.services import api_token_create
from config.asgi import application, django_asgi_app

# The API runs in its own threads, so tests that touch the database need committed data.
committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def call(path: str, token: str | None = None, method: str = "GET") -> tuple[Any, bytes, dict]:
    """One request through config.asgi.application; (response start, body, headers)."""
    headers = [(b"host", b"127.0.0.1")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))

    async def run() -> tuple[Any, bytes, dict]:
        communicator = HttpCommunicator(application, method, path, headers=headers)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(5)
        body, chunks = b"", 0
        while True:
            message = await communicator.receive_output(5)
            body += message.get("body", b"")
            chunks += 1
            if not message.get("more_body"):
                break
        await communicator.wait(5)  # let the application finish (it closes the body file)
        named = {name.decode().lower(): value.decode() for name, value in start["headers"]}
        return start["status"], body, {"chunks": chunks, **named}

    return async_to_sync(run)()


def test_unknown_api_path_is_a_json_404() -> None:
    status, body, headers = call("/api/no-such-thing")
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": "Not found.", "errors": []}


def test_api_docs_render_without_the_page_middleware() -> None:
    status, body, headers = call("/api/docs")
    assert status == 200
    assert b"swagger" in body.lower()
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"


@committed
def test_a_token_call_gets_json_and_no_session(annotator: Any) -> None:
    token = api_token_create(user=annotator, name="laptop")
    status, body, headers = call("/api/queues/", token)
    assert status == 200
    assert json.loads(body) == []
    assert "set-cookie" not in headers
    assert call("/api/queues/", "not-a-token")[0] == 401


@committed
def test_an_export_download_streams_the_whole_file_in_chunks(researcher: Any) -> None:
    job = ExportJob.objects.create(
        created_by=researcher,
        spec=ExportSpec(queues=[1], format=ExportFormat.JSONL).model_dump(mode="json"),
        status=JobStatus.DONE,
        file_name="streamed.jsonl",
    )
    path = export_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = b"".join(b'{"row": %d, "text": "%s"}\n' % (n, b"x" * 80) for n in range(20_000))
    path.write_bytes(content)
    token = api_token_create(user=researcher, name="laptop")
    status, body, headers = call(f"/api/exports/{job.pk}/download", token)
    assert status == 200
    assert body == content
    assert headers["chunks"] > 2  # read in blocks, not whole
    assert "attachment" in headers["content-disposition"]


@committed
def test_pages_still_get_the_page_middleware() -> None:
    status, body, headers = call("/accounts/login/")
    assert status == 200
    assert "csrftoken" in headers.get("set-cookie", "")
    assert headers["x-frame-options"] == "DENY"


def test_a_page_request_cancelled_in_flight_closes_its_body_file() -> None:
    """A server stopping with a request in flight cancels it; Django's own handler then
    leaves the request body file to the garbage collector (a ResourceWarning)."""
    opened: list[Any] = []

    async def run() -> None:
        http = application.application_mapping["http"]
        read_body = django_asgi_app.read_body

        async def recording_read_body(receive: Any) -> Any:
            body_file = await read_body(receive)
            opened.append(body_file)
            return body_file

        messages = [{"type": "http.request", "body": b"", "more_body": False}]
        never = asyncio.Event()

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await never.wait()  # the client neither sends nor leaves
            return {}

        async def send(message: dict) -> None:
            await never.wait()  # the response is never taken

        scope = {"type": "http", "method": "GET", "path": "/no-such-page", "headers": [],
                 "query_string": b"", "root_path": "", "server": ("127.0.0.1", 80)}  # fmt: skip
        with mock.patch.object(django_asgi_app, "read_body", recording_read_body):
            task = asyncio.ensure_future(http(scope, receive, send))
            while not opened:
                await asyncio.sleep(0)
            for _ in range(100):  # let it reach the response
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    async_to_sync(run)()
    [body_file] = opened
    assert body_file.closed
