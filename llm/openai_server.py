"""A small OpenAI-compatible HTTP server over any Backend.

Lets one machine's model serve others (and lets tests exercise OpenAIBackend against a real
model). Standard library only and importable without Django; the `serve_model` management
command wraps `serve`. Implements the subset Arbiter uses:

- `POST /v1/chat/completions`: `stream: true` answers server-sent `chat.completion.chunk`
  events ending in `data: [DONE]` (plus a usage chunk with `stream_options.include_usage`);
  `stream: false` answers one `chat.completion` object. `logprobs` with `top_logprobs`
  is served for non-streamed one-token replies (what option scoring asks for) when the
  backend can rank next tokens; otherwise it is refused with 400, as servers without
  logprobs do.
- `GET /v1/models`: the one model served.
- Bad JSON or parameters: 400 with `{"error": {"message": ...}}`, like OpenAI.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Protocol, runtime_checkable

from llm.backends.base import (
    Backend,
    GenerationError,
    GenerationParams,
    GenerationTimeoutError,
    ModelUnavailableError,
    StreamChunk,
    Usage,
    validate_messages,
)

logger = logging.getLogger(__name__)

_MAX_BODY_BYTES = 1024 * 1024
_DEFAULTS = GenerationParams()


class BadRequest(ValueError):
    """Client error carried to a 4xx response."""

    def __init__(
        self, message: str, *, status: HTTPStatus = HTTPStatus.BAD_REQUEST, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


# OpenAI's cap on alternatives per token.
_MAX_TOP_LOGPROBS = 20


@runtime_checkable
class RanksNextTokens(Protocol):
    """A backend that can list a chat's most likely next tokens (the transformers one)."""

    def first_token_top(self, messages: Any, *, k: int) -> list[tuple[str, float]]: ...


class ChatRequest(NamedTuple):
    messages: list[Any]
    params: GenerationParams
    stream: bool
    include_usage: bool
    # None: no logprobs asked for; else how many alternatives (0..20) beside the chosen token.
    top_logprobs: int | None


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True
    # Connections are short-lived; rebinding a just-freed test port must not fail.
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        backend: Backend,
        model_name: str,
        timeout_s: float = _DEFAULTS.timeout_s,
        logprobs: bool = True,
    ) -> None:
        super().__init__(address, _Handler)
        self.backend = backend
        self.logprobs = logprobs and isinstance(backend, RanksNextTokens)
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.created = int(time.time())
        # One model on a few cores: concurrent generations would only slow each other down,
        # so requests queue here (HTTP threads stay free to answer /v1/models and errors).
        self.generation_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL in the OpenAI SDK convention (ends in /v1)."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start_in_thread(self) -> OpenAIServer:
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"openai-server:{self.server_address[1]}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (from another thread) and free the port."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()


def make_server(
    backend: Backend,
    *,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout_s: float = _DEFAULTS.timeout_s,
    logprobs: bool = True,
) -> OpenAIServer:
    """Bind (port 0 picks a free one) without serving yet. `logprobs=False` refuses
    logprobs requests, as some inference servers do."""
    return OpenAIServer(
        (host, port), backend=backend, model_name=model_name, timeout_s=timeout_s,
        logprobs=logprobs,
    )  # fmt: skip


def serve(
    backend: Backend,
    *,
    model_name: str,
    host: str = "127.0.0.1",
    port: int,
    timeout_s: float = _DEFAULTS.timeout_s,
) -> OpenAIServer:
    """Serve in this thread until `shutdown()` or Ctrl-C; returns the closed server."""
    server = make_server(backend, model_name=model_name, host=host, port=port, timeout_s=timeout_s)
    logger.info("serving %s at %s", model_name, server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return server


def serve_in_thread(
    backend: Backend,
    *,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout_s: float = _DEFAULTS.timeout_s,
    logprobs: bool = True,
) -> OpenAIServer:
    """Start serving on a daemon thread; call `.stop()` when done. For tests and embedding."""
    server = make_server(
        backend, model_name=model_name, host=host, port=port, timeout_s=timeout_s,
        logprobs=logprobs,
    )  # fmt: skip
    return server.start_in_thread()


def parse_chat_request(body: bytes, *, model_name: str, timeout_s: float) -> ChatRequest:
    """Validate a chat-completions body.

    Raises BadRequest with an OpenAI-style message naming the offending parameter.
    """
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")

    model = data.get("model")
    if model is not None and model != model_name:
        raise BadRequest(
            f"The model {model!r} does not exist; this server serves {model_name!r}",
            status=HTTPStatus.NOT_FOUND,
            param="model",
        )
    if "messages" not in data:
        raise BadRequest("'messages' is required", param="messages")
    if not isinstance(data["messages"], list):
        raise BadRequest("'messages' must be a list", param="messages")
    try:
        messages = validate_messages(data["messages"])
    except ValueError as exc:
        raise BadRequest(str(exc), param="messages") from exc
    if data.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported", param="n")

    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", param="stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object", param="stream_options")
    include_usage = bool(options.get("include_usage", False))

    stop = data.get("stop")
    if stop is None:
        stop_tuple: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stop_tuple = (stop,)
    elif isinstance(stop, list):
        stop_tuple = tuple(stop)
    else:
        raise BadRequest("'stop' must be a string or a list of strings", param="stop")

    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    params = GenerationParams(
        temperature=_or_default(data, "temperature", _DEFAULTS.temperature),
        top_p=_or_default(data, "top_p", _DEFAULTS.top_p),
        max_new_tokens=_DEFAULTS.max_new_tokens if max_tokens is None else max_tokens,
        seed=data.get("seed"),
        stop=stop_tuple,
        timeout_s=timeout_s,
        frequency_penalty=_or_default(data, "frequency_penalty", 0.0),
        presence_penalty=_or_default(data, "presence_penalty", 0.0),
    )
    try:
        params.validate()
    except ValueError as exc:
        # Speak the API's name for the field, not ours.
        raise BadRequest(str(exc).replace("max_new_tokens", "max_tokens")) from exc
    return ChatRequest(messages, params, stream, include_usage, _top_logprobs(data))


def _top_logprobs(data: dict[str, Any]) -> int | None:
    logprobs = data.get("logprobs", False)
    if not isinstance(logprobs, bool):
        raise BadRequest("'logprobs' must be a boolean", param="logprobs")
    top = data.get("top_logprobs")
    if top is not None and (
        not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= _MAX_TOP_LOGPROBS
    ):
        raise BadRequest(
            f"'top_logprobs' must be an integer from 0 to {_MAX_TOP_LOGPROBS}",
            param="top_logprobs",
        )
    if not logprobs:
        if top:
            raise BadRequest("'top_logprobs' needs 'logprobs': true", param="top_logprobs")
        return None
    return top or 0


def _or_default(data: dict[str, Any], key: str, default: Any) -> Any:
    value = data.get(key)
    return default if value is None else value


class _Handler(BaseHTTPRequestHandler):
    server: OpenAIServer
    # HTTP/1.0: a streamed reply simply ends when we close the connection, no chunking.
    protocol_version = "HTTP/1.0"
    server_version = "ArbiterOpenAI/1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    # -- routing -------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self._route() == "/v1/models":
            self._send_json(
                HTTPStatus.OK,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": self.server.model_name,
                            "object": "model",
                            "created": self.server.created,
                            "owned_by": "arbiter",
                        }
                    ],
                },
            )
        elif self._route() == "/v1/chat/completions":
            self._send_error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST for /v1/chat/completions")
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"no route for GET {self.path}")

    def do_POST(self) -> None:
        if self._route() != "/v1/chat/completions":
            if self._route() == "/v1/models":
                self._send_error(HTTPStatus.METHOD_NOT_ALLOWED, "use GET for /v1/models")
            else:
                self._send_error(HTTPStatus.NOT_FOUND, f"no route for POST {self.path}")
            return
        try:
            body = self._read_body()
            request = parse_chat_request(
                body, model_name=self.server.model_name, timeout_s=self.server.timeout_s
            )
            if request.top_logprobs is not None:
                self._check_logprobs(request)
        except BadRequest as exc:
            self._send_error(exc.status, str(exc), param=exc.param)
            return
        with self.server.generation_lock:
            if request.top_logprobs is not None:
                self._first_token_completion(request.messages, request.top_logprobs)
            elif request.stream:
                self._stream_completion(
                    request.messages, request.params, include_usage=request.include_usage
                )
            else:
                self._whole_completion(request.messages, request.params)

    def _check_logprobs(self, request: ChatRequest) -> None:
        if not self.server.logprobs:
            raise BadRequest("this server does not give logprobs", param="logprobs")
        if request.stream or request.params.max_new_tokens != 1:
            raise BadRequest(
                "this server gives logprobs only for a non-streamed reply of max_tokens 1",
                param="logprobs",
            )

    def _route(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/")

    def _read_body(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise BadRequest("Content-Length is required", status=HTTPStatus.LENGTH_REQUIRED)
        try:
            length = int(length_header)
        except ValueError as exc:
            raise BadRequest("Content-Length must be an integer") from exc
        if length < 0 or length > _MAX_BODY_BYTES:
            raise BadRequest(
                f"request body must be at most {_MAX_BODY_BYTES} bytes",
                status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        return self.rfile.read(length)

    # -- completions ---------------------------------------------------------------------

    def _first_token_completion(self, messages: list[Any], top_logprobs: int) -> None:
        """The greedy first token with its logprob and the `top_logprobs` alternatives."""
        backend = self.server.backend
        assert isinstance(backend, RanksNextTokens)  # _check_logprobs let only these through
        start = time.perf_counter()
        try:
            ranked = backend.first_token_top(messages, k=max(top_logprobs, 1))
        except GenerationError as exc:
            self._send_error(_status_for(exc), exc.message, kind=type(exc).__name__)
            return
        token, logprob = ranked[0]
        alternatives = [{"token": t, "logprob": lp} for t, lp in ranked[:top_logprobs]]
        usage = Usage(
            prompt_tokens=0,
            completion_tokens=1,
            time_to_first_token_s=None,
            total_s=time.perf_counter() - start,
        )
        self._send_json(
            HTTPStatus.OK,
            {
                "id": _completion_id(),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.server.model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": token},
                        "logprobs": {
                            "content": [
                                {"token": token, "logprob": logprob, "top_logprobs": alternatives}
                            ]
                        },
                        "finish_reason": "length",
                    }
                ],
                "usage": _usage_json(usage),
            },
        )

    def _whole_completion(self, messages: list[Any], params: GenerationParams) -> None:
        parts: list[str] = []
        final: StreamChunk | None = None
        try:
            for chunk in self.server.backend.stream_chat(messages, params=params):
                parts.append(chunk.text)
                if chunk.usage is not None:
                    final = chunk
        except GenerationError as exc:
            self._send_error(_status_for(exc), exc.message, kind=type(exc).__name__)
            return
        if final is None or final.usage is None:
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, "backend ended without usage")
            return
        self._send_json(
            HTTPStatus.OK,
            {
                "id": _completion_id(),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.server.model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(parts)},
                        "finish_reason": final.finish_reason or "stop",
                    }
                ],
                "usage": _usage_json(final.usage),
            },
        )

    def _stream_completion(
        self, messages: list[Any], params: GenerationParams, *, include_usage: bool
    ) -> None:
        chunks = self.server.backend.stream_chat(messages, params=params)
        try:
            # Pull the first chunk before committing to a 200, so that a model that cannot
            # start (missing, prompt too long) still gets a proper error status.
            first = next(chunks)
        except GenerationError as exc:
            self._send_error(_status_for(exc), exc.message, kind=type(exc).__name__)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {
            "id": _completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.server.model_name,
        }
        if include_usage:
            # OpenAI sends "usage": null on every chunk but the usage one.
            base["usage"] = None
        try:
            self._send_event({**base, "choices": [_choice({"role": "assistant", "content": ""})]})
            for chunk in _prepend(first, chunks):
                if chunk.text:
                    self._send_event({**base, "choices": [_choice({"content": chunk.text})]})
                if chunk.usage is not None:
                    reason = chunk.finish_reason or "stop"
                    self._send_event({**base, "choices": [_choice({}, reason)]})
                    if include_usage:
                        self._send_event({**base, "choices": [], "usage": _usage_json(chunk.usage)})
            self._send_raw(b"data: [DONE]\n\n")
        except GenerationError as exc:
            # Headers are gone; report in-band the way OpenAI-compatible servers do.
            self._try_send_raw(_sse({"error": _error_body(exc.message, type(exc).__name__)}))
        except (BrokenPipeError, ConnectionResetError):
            # The client hung up (e.g. its own timeout); stop generating for nobody.
            logger.info("client went away mid-stream")
        finally:
            # Ends the backend's generator now (freeing its KV cache) rather than at GC.
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    # -- responses -----------------------------------------------------------------------

    def _send_event(self, payload: dict[str, Any]) -> None:
        self._send_raw(_sse(payload))

    def _send_raw(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def _try_send_raw(self, data: bytes) -> None:
        try:
            self._send_raw(data)
        except OSError:
            logger.info("client went away before the error event")

    def _send_json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            logger.info("client went away before the response")

    def _send_error(
        self,
        status: HTTPStatus,
        message: str,
        *,
        param: str | None = None,
        kind: str | None = None,
    ) -> None:
        error = _error_body(message, kind or _error_type(status))
        error["param"] = param
        self._send_json(status, {"error": error})


def _status_for(exc: GenerationError) -> HTTPStatus:
    if isinstance(exc, ModelUnavailableError):
        return HTTPStatus.SERVICE_UNAVAILABLE
    if isinstance(exc, GenerationTimeoutError):
        return HTTPStatus.GATEWAY_TIMEOUT
    return HTTPStatus.INTERNAL_SERVER_ERROR


def _error_type(status: HTTPStatus) -> str:
    if status == HTTPStatus.NOT_FOUND:
        return "not_found_error"
    if 400 <= status < 500:
        return "invalid_request_error"
    return "server_error"


def _error_body(message: str, kind: str) -> dict[str, Any]:
    return {"message": message, "type": kind, "param": None, "code": None}


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _usage_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _prepend(first: StreamChunk, rest: Iterator[StreamChunk]) -> Iterator[StreamChunk]:
    yield first
    yield from rest
