"""The JSON API's own ASGI handler: each request runs start to finish in one pooled thread.

Django's ASGI handler runs a sync view behind a thread hop per sync middleware, in a new
thread per request (asgiref's ThreadSensitiveContext). On a two-core machine that is most of
an API call: a hop costs ~0.3 ms, a new thread ~0.7 ms, and a page request makes about ten.
The API needs none of the page middleware (sessions, CSRF, messages, htmx: it authenticates
by bearer token and returns JSON), so here a request makes exactly one hop, into a long-lived
thread that runs Django's ordinary sync handler, the way a threaded WSGI server would.
Streamed responses (export downloads) are read chunk by chunk in the same pool, never into
memory whole.

Pages keep Django's handler (`PageHandler`), which only makes sure the request body file is
closed however the request ends.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.db import close_old_connections
from django.http import HttpResponseBase, StreamingHttpResponse
from django.urls import set_script_prefix
from django.utils.module_loading import import_string

Scope = dict[str, Any]


# The request body file of the request this task is handling (asyncio gives each its own).
_body_file: contextvars.ContextVar[Any] = contextvars.ContextVar("body_file", default=None)


class PageHandler(ASGIHandler):
    """Django's own handler for pages, but the request body file is closed on every path.

    Django closes it where its handler finishes; a request cancelled in flight (a server
    stopping, a worker restarted under load) leaves it to the garbage collector, which warns.
    """

    async def read_body(self, receive: Any) -> Any:
        body_file = await super().read_body(receive)
        _body_file.set(body_file)
        return body_file

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        try:
            await super().handle(scope, receive, send)
        finally:
            body_file = _body_file.get()
            if body_file is not None:
                body_file.close()


class ApiHandler(ASGIHandler):
    urlconf = "config.api_urls"

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(settings.API_THREADS, thread_name_prefix="api")
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        """The sync chain from API_MIDDLEWARE: plain process_request/process_response
        middleware only (no view, template or exception hooks)."""
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]
        for path in reversed(settings.API_MIDDLEWARE):
            handler = convert_exception_to_response(import_string(path)(handler))
        self._middleware_chain = handler

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(self.executor, self._respond, scope, body_file)
            if isinstance(response, StreamingHttpResponse) and not response.is_async:
                chunks = cast(Iterable[bytes], response.streaming_content)  # sync: not is_async
                response.streaming_content = self._read_in_pool(chunks, loop)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await loop.run_in_executor(self.executor, response.close)
        finally:
            body_file.close()

    def _respond(self, scope: Scope, body_file: Any) -> HttpResponseBase:
        """In a pool thread: the whole request, database work included."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
            response: HttpResponseBase = error_response
        else:
            request.urlconf = self.urlconf  # type: ignore[attr-defined]
            response = self.get_response(request)
        if response.streaming:
            # The body is read later, from files; this thread's connection goes back now.
            close_old_connections()
        else:
            response.close()  # request_finished: the connection goes back to the pool here
        return response

    async def _read_in_pool(
        self, chunks: Iterable[bytes], loop: asyncio.AbstractEventLoop
    ) -> AsyncIterator[bytes]:
        iterator = iter(chunks)
        while (
            chunk := await loop.run_in_executor(self.executor, next, iterator, None)
        ) is not None:
            yield chunk
