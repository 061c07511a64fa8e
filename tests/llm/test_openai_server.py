"""OpenAIBackend against llm/openai_server.py serving the real bundled model on a free port."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from llm.backends.base import (
    ChatMessage,
    GenerationError,
    GenerationParams,
    GenerationTimeoutError,
    ModelUnavailableError,
)
from llm.backends.bundled import bundled_checkpoint
from llm.backends.openai_backend import OpenAIBackend
from llm.backends.transformers_backend import TransformersBackend
from llm.openai_server import OpenAIServer, serve_in_thread

MODELS_DIR = Path(__file__).resolve().parents[2] / "var" / "models"
MODEL_NAME = "smollm2-test"
STORY: list[ChatMessage] = [
    {"role": "user", "content": "Write a long story about a dragon who learns to cook."}
]
GREEDY = GenerationParams(temperature=0.0, max_new_tokens=16)


@pytest.fixture(scope="module")
def local() -> TransformersBackend:
    return TransformersBackend(str(bundled_checkpoint(MODELS_DIR)), config_name="local")


@pytest.fixture(scope="module")
def server(local: TransformersBackend) -> Iterator[OpenAIServer]:
    running = serve_in_thread(local, model_name=MODEL_NAME)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def remote(server: OpenAIServer) -> OpenAIBackend:
    return OpenAIBackend(server.url, model=MODEL_NAME, api_key="unused", config_name="remote")


@pytest.fixture(scope="module")
def local_greedy(local: TransformersBackend) -> str:
    return "".join(c.text for c in local.stream_chat(STORY, params=GREEDY))


def _post(server: OpenAIServer, body: bytes | dict[str, Any]) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{server.url}/chat/completions",
        data=data,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens once the probe is closed


# -- through the client ----------------------------------------------------------------------


def test_streams_deltas_from_the_server(remote: OpenAIBackend, local_greedy: str) -> None:
    chunks = list(remote.stream_chat(STORY, params=GREEDY))
    texts = [c.text for c in chunks if c.text]
    assert len(texts) >= 5
    assert "".join(c.text for c in chunks) == local_greedy
    final = chunks[-1]
    assert final.finish_reason == "length"
    assert final.usage is not None
    # Real counts, from the server's include_usage chunk.
    assert final.usage.prompt_tokens > 10
    assert final.usage.completion_tokens == GREEDY.max_new_tokens
    assert final.usage.time_to_first_token_s is not None
    assert 0 < final.usage.time_to_first_token_s <= final.usage.total_s


def test_stop_sequences_through_the_server(remote: OpenAIBackend, local_greedy: str) -> None:
    stop = local_greedy.split()[4]
    params = GenerationParams(temperature=0, max_new_tokens=16, stop=(stop,))
    chunks = list(remote.stream_chat(STORY, params=params))
    assert "".join(c.text for c in chunks) == local_greedy[: local_greedy.index(stop)]
    assert chunks[-1].finish_reason == "stop"


def test_penalties_reach_the_server_and_mean_the_same(
    remote: OpenAIBackend, local: TransformersBackend
) -> None:
    # Long enough for the greedy story to repeat a word ("...named Eira. Eira was..."): in
    # the first 16 tokens nothing repeats strongly enough for a penalty to change a choice.
    params = GenerationParams(temperature=0, max_new_tokens=24, frequency_penalty=1.5)
    here = "".join(c.text for c in local.stream_chat(STORY, params=params))
    there = "".join(c.text for c in remote.stream_chat(STORY, params=params))
    assert there == here
    unpenalised_params = GenerationParams(temperature=0, max_new_tokens=24)
    unpenalised = "".join(c.text for c in local.stream_chat(STORY, params=unpenalised_params))
    assert here != unpenalised  # the penalty changed something, so the equality means something


def test_batch_through_the_server(remote: OpenAIBackend, local_greedy: str) -> None:
    chats: list[list[ChatMessage]] = [
        STORY,
        [{"role": "user", "content": "Which city is the capital of France?"}],
    ]
    completions = remote.generate_batch(chats, params=GREEDY)
    assert [c.text for c in completions][0] == local_greedy
    assert "Paris" in completions[1].text
    assert all(c.usage.completion_tokens >= 1 for c in completions)


def test_unknown_model_is_unavailable(server: OpenAIServer) -> None:
    client = OpenAIBackend(server.url, model="gpt-9", api_key=None, config_name="judge")
    with pytest.raises(ModelUnavailableError) as caught:
        list(client.stream_chat(STORY, params=GREEDY))
    assert caught.value.config_name == "judge"
    assert "404" in caught.value.message and "gpt-9" in caught.value.message


def test_server_validation_message_reaches_the_caller(remote: OpenAIBackend) -> None:
    bad: list[Any] = [{"role": "wizard", "content": "hi"}]
    with pytest.raises(GenerationError) as caught:
        list(remote.stream_chat(bad, params=GREEDY))
    assert not isinstance(caught.value, ModelUnavailableError)
    assert "HTTP 400" in caught.value.message
    assert "messages[0].role" in caught.value.message


def test_unreachable_server_fails_fast_naming_config_and_url() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    client = OpenAIBackend(url, model=MODEL_NAME, api_key=None, config_name="debater-remote")
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as caught:
        list(client.stream_chat(STORY, params=GREEDY))
    assert time.perf_counter() - start < 2
    assert caught.value.config_name == "debater-remote"
    assert url in caught.value.message and "connection refused" in caught.value.message


def test_unresolvable_host_is_unavailable() -> None:
    client = OpenAIBackend(
        "http://no-such-host.invalid/v1", model=MODEL_NAME, api_key=None, config_name="x"
    )
    with pytest.raises(ModelUnavailableError, match="no-such-host.invalid"):
        list(client.stream_chat(STORY, params=GREEDY))


def test_timeout_bounds_a_slow_generation(remote: OpenAIBackend, server: OpenAIServer) -> None:
    # 1000 tokens would keep the model busy for about a minute.
    params = GenerationParams(temperature=0, max_new_tokens=1000, timeout_s=0.6)
    start = time.perf_counter()
    with pytest.raises(GenerationTimeoutError) as caught:
        list(remote.stream_chat(params=params, messages=STORY))
    assert time.perf_counter() - start < 5
    assert caught.value.config_name == "remote"
    # The server notices the hang-up and frees the model for the next caller, rather than
    # finishing the abandoned generation first.
    start = time.perf_counter()
    chunks = list(
        remote.stream_chat(STORY, params=GenerationParams(temperature=0, max_new_tokens=2))
    )
    assert chunks[-1].usage is not None
    assert time.perf_counter() - start < 15


def test_timeout_bounds_a_server_that_never_answers() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever reads or replies
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = OpenAIBackend(url, model=MODEL_NAME, api_key=None, config_name="stuck")
        start = time.perf_counter()
        with pytest.raises(GenerationTimeoutError) as caught:
            list(client.stream_chat(STORY, params=GenerationParams(timeout_s=0.5)))
        assert 0.4 < time.perf_counter() - start < 3
        assert caught.value.config_name == "stuck"


def test_server_side_timeout_is_reported(local: TransformersBackend) -> None:
    # A second server over the same model, with a short generation budget of its own.
    strict = serve_in_thread(local, model_name=MODEL_NAME, timeout_s=0.4)
    try:
        status, raw = _post(strict, {"messages": STORY, "temperature": 0, "max_tokens": 400})
        assert status == 504
        assert "timeout" in json.loads(raw)["error"]["message"]

        # Streaming: the 200 is already sent when time runs out, so the error comes in-band.
        client = OpenAIBackend(strict.url, model=MODEL_NAME, api_key=None, config_name="strict")
        params = GenerationParams(temperature=0, max_new_tokens=400)
        received: list[str] = []
        with pytest.raises(GenerationError, match="mid-stream.*timeout") as caught:
            for chunk in client.stream_chat(STORY, params=params):
                received.append(chunk.text)
        assert caught.value.config_name == "strict"
        assert "".join(received), "text generated before the timeout still reached the caller"
    finally:
        strict.stop()


def test_base_url_must_be_http() -> None:
    with pytest.raises(ModelUnavailableError, match="http"):
        OpenAIBackend("localhost:8000", model="m", api_key=None, config_name="cfg")


# -- the wire format -------------------------------------------------------------------------


def test_non_streaming_completion(server: OpenAIServer, local_greedy: str) -> None:
    status, body = _post(
        server, {"model": MODEL_NAME, "messages": STORY, "temperature": 0, "max_tokens": 16}
    )
    assert status == 200
    payload = json.loads(body)
    assert payload["object"] == "chat.completion"
    assert payload["model"] == MODEL_NAME
    [choice] = payload["choices"]
    assert choice["message"] == {"role": "assistant", "content": local_greedy}
    assert choice["finish_reason"] == "length"
    usage = payload["usage"]
    assert usage["completion_tokens"] == 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + 16


@pytest.mark.parametrize("include_usage", [True, False])
def test_streaming_wire_format(server: OpenAIServer, include_usage: bool) -> None:
    status, body = _post(
        server,
        {
            "model": MODEL_NAME,
            "messages": STORY,
            "temperature": 0,
            "max_tokens": 4,
            "stream": True,
            "stream_options": {"include_usage": include_usage},
        },
    )
    assert status == 200
    events = [block.removeprefix("data: ") for block in body.decode().split("\n\n") if block]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    with_choices = [c for c in chunks if c["choices"]]
    assert with_choices[-1]["choices"][0]["finish_reason"] == "length"
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in with_choices)
    assert content
    usage_chunks = [c for c in chunks if c.get("usage")]
    if include_usage:
        assert [c["choices"] for c in usage_chunks] == [[]]
        assert usage_chunks[0]["usage"]["completion_tokens"] == 4
    else:
        assert usage_chunks == []


def test_models_endpoint(server: OpenAIServer) -> None:
    with urllib.request.urlopen(f"{server.url}/models", timeout=10) as response:
        payload = json.loads(response.read())
    assert [m["id"] for m in payload["data"]] == [MODEL_NAME]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        ({"messages": []}, "messages must not be empty"),
        ({"temperature": 0.5}, "'messages' is required"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": STORY, "temperature": 5}, "temperature"),
        ({"messages": STORY, "temperature": "hot"}, "temperature must be a number"),
        ({"messages": STORY, "top_p": 0}, "top_p"),
        ({"messages": STORY, "max_tokens": 0}, "max_tokens"),
        ({"messages": STORY, "stop": 3}, "stop"),
        ({"messages": STORY, "frequency_penalty": 3}, "frequency_penalty"),
        ({"messages": STORY, "stream": "yes"}, "stream"),
        ({"messages": STORY, "n": 2}, "n=1"),
    ],
)
def test_bad_requests_get_a_400_with_an_openai_error(
    server: OpenAIServer, body: bytes | dict[str, Any], needle: str
) -> None:
    status, raw = _post(server, body)
    assert status == 400
    error = json.loads(raw)["error"]
    assert needle in error["message"]
    assert error["type"] == "invalid_request_error"


def test_unknown_route_and_wrong_method(server: OpenAIServer) -> None:
    for url, method in ((f"{server.url}/nope", "GET"), (f"{server.url}/chat/completions", "GET")):
        request = urllib.request.Request(url, method=method)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        with caught.value as error:
            assert error.code in (404, 405)
            assert "message" in json.loads(error.read())["error"]


def test_a_batched_stream_through_the_server(remote: OpenAIBackend, local_greedy: str) -> None:
    chats: list[list[ChatMessage]] = [
        STORY,
        [{"role": "user", "content": "Which city is the capital of France?"}],
    ]
    texts, ends = ["", ""], [0, 0]
    for row_chunk in remote.stream_batch(chats, params=GREEDY):
        texts[row_chunk.row] += row_chunk.chunk.text
        ends[row_chunk.row] += row_chunk.chunk.usage is not None
    assert texts[0] == local_greedy and "Paris" in texts[1]
    assert ends == [1, 1]  # each row ends once, with its usage


def test_closing_a_batched_stream_hangs_up_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller that stops reading (a tree's draft whose node was answered) closes the
    stream: every row stops at its next chunk instead of streaming to its end."""
    from llm.backends.base import StreamChunk, Usage

    rows_stopped_at: list[int] = []

    def slow_chat(self: OpenAIBackend, chat: Any, *, params: GenerationParams) -> Any:
        sent = 0
        try:
            while sent < 100:  # 5 s a row
                time.sleep(0.05)
                yield StreamChunk(text="x", tokens=1)
                sent += 1
            yield StreamChunk("", usage=Usage(1, 100, 0.0, 5.0), finish_reason="stop")
        finally:
            rows_stopped_at.append(sent)

    monkeypatch.setattr(OpenAIBackend, "stream_chat", slow_chat)
    backend = OpenAIBackend("http://127.0.0.1:9/v1", model="m", api_key=None, config_name="r")
    # Every backend's stream_batch is a generator; close() is how a caller stops it.
    stream = cast(Generator[Any, None, None], backend.stream_batch([STORY, STORY], params=GREEDY))
    next(stream)
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 1.0
    assert len(rows_stopped_at) == 2 and max(rows_stopped_at) < 20


# -- option probabilities through the server --------------------------------------------------

QUIZ: list[ChatMessage] = [
    {"role": "user", "content": "Which is a colour? A: red. B: seven. Answer with the letter."}
]


def test_choices_through_a_server_with_logprobs_match_the_local_model(
    remote: OpenAIBackend, local: TransformersBackend
) -> None:
    (through,) = remote.choose_batch([QUIZ], ["A", "B"], params=GenerationParams())
    (direct,) = local.choose_batch([QUIZ], ["A", "B"], params=GenerationParams())
    assert through.method == "logprobs"
    assert through.probabilities is not None and direct.probabilities is not None
    # The server lists the top 20 tokens only, so its mass can fall short of the local one;
    # the options' share between themselves is the same.
    assert through.probabilities == pytest.approx(direct.probabilities, abs=0.02)


def test_a_server_without_logprobs_falls_back_to_votes_saying_so(
    local: TransformersBackend,
) -> None:
    plain = serve_in_thread(local, model_name=MODEL_NAME, logprobs=False)
    try:
        status, raw = _post(plain, {"messages": QUIZ, "max_tokens": 1, "logprobs": True})
        assert status == 400 and "logprobs" in json.loads(raw)["error"]["message"]
        client = OpenAIBackend(plain.url, model=MODEL_NAME, api_key=None, config_name="plain")
        params = GenerationParams(temperature=1.0, max_new_tokens=4, seed=7)
        (choice,) = client.choose_batch([QUIZ], ["A", "B"], params=params)
    finally:
        plain.stop()
    assert choice.method == "votes" and len(choice.replies) == 8
    # Replies that open with the letter as a word ("A: red", not "Adding a colour"): the
    # parser must count at least these.
    named = [r for r in choice.replies if re.match(r"\s*[AB]\b", r)]
    assert choice.option_mass is not None and choice.option_mass >= len(named) / 8 - 1e-9
    if choice.probabilities is not None:
        assert sum(choice.probabilities) == pytest.approx(1.0)


def test_votes_at_temperature_0_are_refused_not_faked(local: TransformersBackend) -> None:
    # Eight greedy replies are one reply eight times: a 0 or a 1, not a probability.
    plain = serve_in_thread(local, model_name=MODEL_NAME, logprobs=False)
    try:
        client = OpenAIBackend(plain.url, model=MODEL_NAME, api_key=None, config_name="plain")
        params = GenerationParams(temperature=0.0, max_new_tokens=4)
        with pytest.raises(GenerationError, match="gave no log-probabilities.*temperature above 0"):
            client.choose_batch([QUIZ], ["A", "B"], params=params)
    finally:
        plain.stop()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": QUIZ, "logprobs": "yes"}, "'logprobs' must be a boolean"),
        ({"messages": QUIZ, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"messages": QUIZ, "top_logprobs": 3}, "needs 'logprobs'"),
        ({"messages": QUIZ, "logprobs": True, "max_tokens": 5}, "max_tokens 1"),
        ({"messages": QUIZ, "logprobs": True, "max_tokens": 1, "stream": True}, "non-streamed"),
    ],
)
def test_bad_logprobs_requests_get_a_400(
    server: OpenAIServer, body: dict[str, Any], needle: str
) -> None:
    status, raw = _post(server, body)
    assert status == 400
    assert needle in json.loads(raw)["error"]["message"]


def test_logprobs_reply_has_openai_shape(server: OpenAIServer) -> None:
    status, raw = _post(
        server, {"messages": QUIZ, "max_tokens": 1, "logprobs": True, "top_logprobs": 5}
    )
    assert status == 200
    choice = json.loads(raw)["choices"][0]
    first = choice["logprobs"]["content"][0]
    assert choice["message"]["content"] == first["token"]
    assert len(first["top_logprobs"]) == 5
    logprobs = [alt["logprob"] for alt in first["top_logprobs"]]
    assert logprobs == sorted(logprobs, reverse=True) and logprobs[0] == first["logprob"] <= 0
