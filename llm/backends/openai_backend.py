"""Generation through an OpenAI-compatible server (vLLM, llama.cpp server, Ollama, ours).

Standard library only (http.client): the venv has no `httpx`, and one streamed POST does not
justify a dependency. Safe to import from the web process (no torch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import math
import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from llm.backends.base import (
    CHOICE_VOTES,
    ChatMessage,
    Completion,
    FinishReason,
    GenerationError,
    GenerationParams,
    GenerationTimeoutError,
    ModelUnavailableError,
    OptionChoice,
    RowChunk,
    StopScanner,
    StreamChunk,
    Usage,
    choice_from_votes,
    options_check,
    votes_problem,
)

# Connecting is quick or never; don't spend the whole generation budget on a dead host.
_MAX_CONNECT_TIMEOUT_S = 10.0
# A small pool: the server batches or queues; more client threads only add contention.
_BATCH_CONCURRENCY = 4
_MAX_ERROR_BODY = 64 * 1024
_MAX_REPLY_BODY = 4 * 1024 * 1024
# Alternatives asked for at the answer's first token (OpenAI's cap is 20).
_TOP_LOGPROBS = 20
# A vote only has to name an option; a long reply costs time and names nothing more.
_VOTE_MAX_TOKENS = 16


class ServerRefusedError(GenerationError):
    """The server answered an HTTP error status (other than 404, an unknown model)."""

    def __init__(self, message: str, *, config_name: str, status: int) -> None:
        super().__init__(message, config_name=config_name)
        self.status = status


class OpenAIBackend:
    """Streams `POST {base}/chat/completions` with `stream: true` and parses the SSE reply.

    `base_url` may end in `/v1` (the OpenAI SDK convention) or be the server root; both
    reach `/v1/chat/completions`.
    """

    def __init__(self, base_url: str, *, model: str, api_key: str | None, config_name: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModelUnavailableError(
                f"base URL {base_url!r} must be an http:// or https:// URL",
                config_name=config_name,
            )
        self.base_url = base_url
        self.model = model
        self.config_name = config_name
        self._api_key = api_key
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        root = parts.path.rstrip("/")
        if not root.endswith("/v1"):
            root += "/v1"
        self._path = f"{root}/chat/completions"
        self.url = f"{parts.scheme}://{parts.netloc}{self._path}"

    def stream_chat(
        self, messages: Sequence[ChatMessage], *, params: GenerationParams
    ) -> Iterator[StreamChunk]:
        """Yield content deltas as the server sends them; the last chunk carries usage.

        Raises ModelUnavailableError if the server cannot be reached (or does not know the
        model), GenerationError with the server's message on other HTTP errors, and
        GenerationTimeoutError once `params.timeout_s` has passed.
        """
        params.validate()
        start = time.perf_counter()
        deadline = start + params.timeout_s
        conn = self._connect(params)
        # Kept apart from `conn`: http.client drops conn.sock once the reply says
        # "Connection: close", but we must keep re-arming this socket's timeout.
        sock = conn.sock
        response: http.client.HTTPResponse | None = None
        try:
            response = self._post(conn, self._body(messages, params), params, deadline)
            yield from self._read_stream(sock, response, params, start, deadline)
        finally:
            # The response owns the socket once the server said "Connection: close" (it
            # detaches from `conn`); closing only `conn` would keep the server generating
            # for a caller that has given up.
            if response is not None:
                response.close()
            conn.close()

    def generate_batch(
        self, chats: Sequence[Sequence[ChatMessage]], *, params: GenerationParams
    ) -> list[Completion]:
        """Run the chats concurrently (the server batches them); results in input order."""
        params.validate()
        if not chats:
            return []
        with ThreadPoolExecutor(max_workers=min(_BATCH_CONCURRENCY, len(chats))) as pool:
            return list(pool.map(lambda chat: self._complete(chat, params), chats))

    def stream_batch(
        self, chats: Sequence[Sequence[ChatMessage]], *, params: GenerationParams
    ) -> Iterator[RowChunk]:
        """Stream the chats concurrently (the server batches them), chunks interleaved as
        they arrive; the first error of any row is raised."""
        params.validate()
        if not chats:
            return
        # Any error, not only GenerationError: a row that died silently would hang this loop.
        arrived: queue.Queue[RowChunk | Exception] = queue.Queue()
        # The caller closed this generator (it no longer wants the rows): each row hangs up
        # at its next chunk, so leaving the pool below does not wait for whole generations.
        abandoned = threading.Event()

        def stream_row(row: int, chat: Sequence[ChatMessage]) -> None:
            try:
                for chunk in self.stream_chat(chat, params=params):
                    if abandoned.is_set():
                        return
                    arrived.put(RowChunk(row, chunk))
            except Exception as error:
                arrived.put(error)

        with ThreadPoolExecutor(max_workers=min(_BATCH_CONCURRENCY, len(chats))) as pool:
            try:
                for row, chat in enumerate(chats):
                    pool.submit(stream_row, row, chat)
                ended = 0
                while ended < len(chats):
                    item = arrived.get()
                    if isinstance(item, Exception):
                        raise item
                    yield item
                    if item.chunk.usage is not None:
                        ended += 1
            finally:
                abandoned.set()

    def choose_batch(
        self,
        chats: Sequence[Sequence[ChatMessage]],
        options: Sequence[str],
        *,
        params: GenerationParams,
    ) -> list[OptionChoice]:
        """Each chat's probability of each option: from the first answer token's
        `top_logprobs` where the server gives them (one greedy token, never sampled), else
        from CHOICE_VOTES sampled replies (method "votes", saying so)."""
        params.validate()
        cleaned = options_check(options)
        if not chats:
            return []
        with ThreadPoolExecutor(max_workers=min(_BATCH_CONCURRENCY, len(chats))) as pool:
            return list(pool.map(lambda chat: self._choose(chat, cleaned, params), chats))

    def _choose(
        self, chat: Sequence[ChatMessage], options: list[str], params: GenerationParams
    ) -> OptionChoice:
        top = self._first_token_logprobs(chat, params)
        if top is None:
            return self._choose_by_votes(chat, options, params)
        per_option = [0.0] * len(options)
        for token, logprob in top.items():
            word = token.strip()
            for index, option in enumerate(options):
                if word and word == option:
                    per_option[index] += math.exp(logprob)
        mass = sum(per_option)
        return OptionChoice(
            probabilities=tuple(p / mass for p in per_option) if mass > 0 else None,
            method="logprobs",
            option_mass=mass,
        )

    def _first_token_logprobs(
        self, chat: Sequence[ChatMessage], params: GenerationParams
    ) -> dict[str, float] | None:
        """token -> logprob for the reply's first token, or None when the server refuses
        logprobs (4xx other than 404) or answers without them."""
        body = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in chat],
            "stream": False,
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": _TOP_LOGPROBS,
        }
        try:
            reply = self._post_json(json.dumps(body).encode(), params)
        except ServerRefusedError as exc:
            if exc.status < 500:  # the server does not take `logprobs`
                return None
            raise
        try:
            first = reply["choices"][0]["logprobs"]["content"][0]
            return {str(alt["token"]): float(alt["logprob"]) for alt in first["top_logprobs"]}
        except (KeyError, IndexError, TypeError, ValueError):
            return None

    def _choose_by_votes(
        self, chat: Sequence[ChatMessage], options: list[str], params: GenerationParams
    ) -> OptionChoice:
        problem = votes_problem(params)
        if problem is not None:
            raise GenerationError(
                f"{self.url} gave no log-probabilities, and {problem}",
                config_name=self.config_name,
            )
        short = dataclasses.replace(
            params, max_new_tokens=min(params.max_new_tokens, _VOTE_MAX_TOKENS)
        )
        # One seed per vote keeps a seeded config reproducible without eight equal replies.
        seeds = [None if short.seed is None else short.seed + vote for vote in range(CHOICE_VOTES)]
        replies = [
            self._complete(chat, dataclasses.replace(short, seed=seed)).text for seed in seeds
        ]
        return choice_from_votes(replies, options)

    def _post_json(self, body: bytes, params: GenerationParams) -> dict[str, Any]:
        """One non-streamed request; the parsed JSON reply."""
        deadline = time.perf_counter() + params.timeout_s
        conn = self._connect(params)
        sock = conn.sock
        response: http.client.HTTPResponse | None = None
        try:
            response = self._post(conn, body, params, deadline)
            self._arm(sock, params, deadline)
            try:
                raw = response.read(_MAX_REPLY_BODY)
            except TimeoutError as exc:
                raise self._timeout_error(params) from exc
            except (http.client.HTTPException, OSError) as exc:
                raise GenerationError(
                    f"the reply from {self.url} broke off: {_describe(exc)}",
                    config_name=self.config_name,
                ) from exc
        finally:
            if response is not None:
                response.close()
            conn.close()
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GenerationError(
                f"{self.url} answered with something that is not JSON: {raw[:200]!r}",
                config_name=self.config_name,
            ) from exc
        if not isinstance(payload, dict):
            raise GenerationError(
                f"{self.url} answered with an unexpected reply: {raw[:200]!r}",
                config_name=self.config_name,
            )
        return payload

    def _complete(self, chat: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        chunks = list(self.stream_chat(chat, params=params))
        final = chunks[-1]
        # stream_chat always ends with a chunk carrying usage and a finish reason.
        assert final.usage is not None and final.finish_reason is not None
        return Completion(
            text="".join(c.text for c in chunks),
            usage=final.usage,
            finish_reason=final.finish_reason,
        )

    # -- HTTP ----------------------------------------------------------------------------

    def _body(self, messages: Sequence[ChatMessage], params: GenerationParams) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "stream": True,
            # Ask for real token counts; servers that ignore it leave us counting chunks.
            "stream_options": {"include_usage": True},
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
        }
        # Sent only when set: a server that lacks them then never sees them.
        if params.frequency_penalty:
            body["frequency_penalty"] = params.frequency_penalty
        if params.presence_penalty:
            body["presence_penalty"] = params.presence_penalty
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        return json.dumps(body).encode()

    def _connect(self, params: GenerationParams) -> http.client.HTTPConnection:
        timeout = min(_MAX_CONNECT_TIMEOUT_S, params.timeout_s)
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.connect()
        except (TimeoutError, ssl.SSLError, OSError) as exc:
            conn.close()
            raise ModelUnavailableError(
                f"cannot reach the inference server at {self.url}: {_describe(exc)}",
                config_name=self.config_name,
            ) from exc
        return conn

    def _post(
        self,
        conn: http.client.HTTPConnection,
        body: bytes,
        params: GenerationParams,
        deadline: float,
    ) -> http.client.HTTPResponse:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            self._arm(conn.sock, params, deadline)
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
        except TimeoutError as exc:
            raise self._timeout_error(params) from exc
        except (http.client.HTTPException, OSError) as exc:
            raise ModelUnavailableError(
                f"the inference server at {self.url} dropped the request: {_describe(exc)}",
                config_name=self.config_name,
            ) from exc
        if response.status >= 400:
            with contextlib.closing(response):
                message = _error_message(response)
            # 404 is what vLLM/OpenAI answer for an unknown model (or a wrong base path).
            text = f"{self.url} answered HTTP {response.status}: {message}"
            if response.status == 404:
                raise ModelUnavailableError(text, config_name=self.config_name)
            raise ServerRefusedError(text, config_name=self.config_name, status=response.status)
        return response

    def _read_stream(
        self,
        sock: socket.socket,
        response: http.client.HTTPResponse,
        params: GenerationParams,
        start: float,
        deadline: float,
    ) -> Iterator[StreamChunk]:
        scanner = StopScanner(params.stop)
        first_text_at: float | None = None
        finish: FinishReason | None = None
        server_usage: dict[str, Any] | None = None
        content_chunks = 0
        unreported = 0  # content deltas (about a token each) since the last chunk

        for event in self._events(sock, response, params, deadline):
            if event == "[DONE]":
                break
            payload = self._parse_event(event)
            if isinstance(payload.get("usage"), dict):
                server_usage = payload["usage"]
            for choice in payload.get("choices") or ():
                delta = (choice.get("delta") or {}).get("content")
                if isinstance(delta, str) and delta:
                    content_chunks += 1
                    unreported += 1
                    text = scanner.feed(delta)
                    if text:
                        if first_text_at is None:
                            first_text_at = time.perf_counter()
                        yield StreamChunk(text=text, tokens=unreported)
                        unreported = 0
                reason = choice.get("finish_reason")
                if reason:
                    finish = "length" if reason == "length" else "stop"
            if scanner.stopped:
                # The server may not honour `stop`; we have what we need, so hang up.
                break

        tail = scanner.flush()
        now = time.perf_counter()
        if tail and first_text_at is None:
            first_text_at = now
        usage = Usage(
            prompt_tokens=int((server_usage or {}).get("prompt_tokens") or 0),
            completion_tokens=int((server_usage or {}).get("completion_tokens") or content_chunks),
            time_to_first_token_s=None if first_text_at is None else first_text_at - start,
            total_s=now - start,
        )
        if scanner.stopped:
            finish = "stop"
        yield StreamChunk(text=tail, usage=usage, finish_reason=finish or "stop", tokens=unreported)

    def _events(
        self,
        sock: socket.socket,
        response: http.client.HTTPResponse,
        params: GenerationParams,
        deadline: float,
    ) -> Iterator[str]:
        """The `data:` payloads of the server-sent event stream, one string per event."""
        data: list[str] = []
        while True:
            self._arm(sock, params, deadline)
            try:
                raw = response.readline()
            except TimeoutError as exc:
                raise self._timeout_error(params) from exc
            except (http.client.HTTPException, OSError) as exc:
                raise GenerationError(
                    f"the stream from {self.url} broke off: {_describe(exc)}",
                    config_name=self.config_name,
                ) from exc
            if not raw:  # connection closed
                if data:
                    yield "\n".join(data)
                return
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            # Other fields (event:, id:, retry:) and ":" comments carry nothing we use.

    def _parse_event(self, event: str) -> dict[str, Any]:
        try:
            payload = json.loads(event)
        except json.JSONDecodeError as exc:
            raise GenerationError(
                f"{self.url} sent a stream event that is not JSON: {event[:200]!r}",
                config_name=self.config_name,
            ) from exc
        if not isinstance(payload, dict):
            raise GenerationError(
                f"{self.url} sent an unexpected stream event: {event[:200]!r}",
                config_name=self.config_name,
            )
        if "error" in payload:
            # Servers report failures after the 200 header this way (vLLM, ours).
            raise GenerationError(
                f"{self.url} reported an error mid-stream: {_message_of(payload)}",
                config_name=self.config_name,
            )
        return payload

    def _arm(self, sock: socket.socket, params: GenerationParams, deadline: float) -> None:
        # Each blocking socket call gets only what is left of the overall budget, so a
        # server that trickles bytes cannot stretch the generation past timeout_s.
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise self._timeout_error(params)
        sock.settimeout(remaining)

    def _timeout_error(self, params: GenerationParams) -> GenerationTimeoutError:
        return GenerationTimeoutError(
            f"no complete answer from {self.url} within the {params.timeout_s:g} s timeout",
            config_name=self.config_name,
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"host name lookup failed ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _error_message(response: http.client.HTTPResponse) -> str:
    raw = response.read(_MAX_ERROR_BODY)
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode("utf-8", errors="replace").strip()[:500] or response.reason
    if isinstance(payload, dict):
        return _message_of(payload)
    return str(payload)[:500]


def _message_of(payload: dict[str, Any]) -> str:
    error = payload.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    # FastAPI-style servers (some vLLM versions) answer {"detail": ...}.
    if payload.get("detail"):
        return str(payload["detail"])
    return json.dumps(payload)[:500]
