"""Live-debate streaming benchmark: from the model's decode loop to judges' websockets.

Run: .venv/bin/python bench/debate_stream.py [--tokens 96] [--rounds 3] [--watchers 50]
     [--watch-rounds 2]     (a few minutes; far longer on a busy machine)

Every figure is printed next to a baseline measured in the same run:
  (1) tokens reach a websocket client at >= 0.9x the rate of TransformersBackend.stream_chat
      alone (bundled model, greedy, same prompt and token count; rounds interleaved);
  (2) delay from the backend yielding a chunk to the client holding it: median <= 150 ms
      (p95 shown), matched by character offset on one clock (same process);
  (3) N watchers (default 50, one judge and observers) on one debate, through channels-redis,
      all receive every character in order: each client's text equals the streamed text;
  (4) a simultaneous round of two speeches (--tokens each) through the real path — the
      judge's prior (debate_prior_submit) -> the Celery task on the broker -> a real
      `celery worker` process on the generation queue (solo pool, as deployed: one
      generation at a time) -> one batched stream -> websocket client, until the judge's
      socket says the round is over — vs one bare `generate_batch` of the same two prompts
      in this process: wall time <= 1.25x (runs interleaved, after a warm-up round).

The path measured is the real one: debate.generation.speeches_generate (TextStreamPublisher: save
the text, then group_send the delta) -> channels-redis -> config.asgi under uvicorn (its own
process, as in a deployment) -> DebateConsumer -> `websockets` clients authenticated by a
session cookie, all on one asyncio loop in a thread of this process.

By default everything lives in a temporary ARBITER_VAR_DIR (SQLite, an embedded Redis on a
unix socket), removed at the end. DATABASE_URL=postgres://... creates a scratch database
`<name>_debate_stream_<pid>` on that server and drops it at the end; REDIS_URL=redis://...
uses that server under a key prefix of this run's own (its keys deleted at the end).
Exits 0 whatever the verdicts; non-zero only if the set-up fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from bisect import bisect_left
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from debate.models import Speech
    from llm.backends.base import (
        Backend,
        ChatMessage,
        GenerationParams,
        RowChunk,
        StreamChunk,
        Usage,
    )
    from llm.models import ModelConfig

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "var" / "models"
DELAY_TARGET_MS = 150.0
RATE_TARGET = 0.9
GRACE_S = 15.0  # how long clients may lag behind the end of generation before we give up

QUESTION = "Why did the lighthouse keeper repaint his door every spring?"
ANSWER_A = "Because the salt wind peeled the paint by autumn"
ANSWER_B = "Because the harbour master ordered a new colour each year"
PASSAGE = (
    "The keeper painted his door green every spring, because the salt wind peeled it by "
    "autumn. The harbour master never wrote to him about colours; the boat shed beside the "
    "door stayed red for thirty years, and the keeper's log mentions paint only in March."
)

T = TypeVar("T")


class SetupError(Exception):
    """The bench could not build its stack; nothing was measured."""


# --- environment, before Django is imported ---------------------------------------------------
@dataclass
class Stack:
    var_dir: Path
    database: str = "SQLite (temporary)"
    redis: str = "embedded redis-server (temporary)"
    base_url: str = ""


def stack_prepare(cleanup: contextlib.ExitStack) -> Stack:
    """Point this process (and the server we start) at a private var dir, database and Redis."""
    var_dir = Path(tempfile.mkdtemp(prefix="arbiter-debate-stream-"))
    cleanup.callback(shutil.rmtree, var_dir, ignore_errors=True)
    stack = Stack(var_dir=var_dir)
    os.environ["ARBITER_VAR_DIR"] = str(var_dir)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("LLM_MODELS_DIR", str(MODELS_DIR))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    prefix = f"arbiter-debate-stream-{os.getpid()}:"
    os.environ["REDIS_KEY_PREFIX"] = prefix
    sys.path.insert(0, str(ROOT))

    from bench.serving import process_stop
    from config.embedded import embedded_redis_start, redis_answers, redis_keys_delete

    redis_url = os.environ.get("REDIS_URL", "").strip()
    if redis_url:
        if not redis_answers(redis_url):
            raise SetupError(f"REDIS_URL={redis_url} does not answer")
        stack.redis = f"{redis_url} (key prefix {prefix})"
        cleanup.callback(redis_keys_delete, redis_url, prefix)
    else:
        os.environ.pop("REDIS_URL", None)
        process = embedded_redis_start(
            socket_path=var_dir / "redis.sock", log_path=var_dir / "log" / "redis.log"
        )
        cleanup.callback(process_stop, process)

    database_url = os.environ.get("DATABASE_URL", "").strip()
    if database_url.startswith(("postgres://", "postgresql://")):
        os.environ["DATABASE_URL"] = _scratch_postgres(database_url, cleanup)
        stack.database = f"PostgreSQL, scratch database {urlsplit(os.environ['DATABASE_URL']).path}"
    elif database_url:
        raise SetupError("DATABASE_URL: only postgres:// is supported (default: SQLite)")
    else:
        os.environ.pop("DATABASE_URL", None)
    return stack


def _scratch_postgres(url: str, cleanup: contextlib.ExitStack) -> str:
    """Create `<db>_debate_stream_<pid>` next to the database in `url`; drop it at the end."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'arbiter'}_debate_stream_{os.getpid()}"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise SetupError(f"could not create the scratch database {name}: {exc}") from exc

    def drop() -> None:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    cleanup.callback(drop)
    return urlunsplit(parts._replace(path=f"/{name}"))


def server_start(stack: Stack, cleanup: contextlib.ExitStack) -> None:
    """config.asgi under uvicorn in its own process, on this run's database and Redis."""
    from bench.serving import asgi_serve, process_stop

    log_path = stack.var_dir / "log" / "uvicorn.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            process, port = asgi_serve(log=log)
        except RuntimeError as exc:
            raise SetupError(f"{exc}:\n{log_path.read_text()[-2000:]}") from exc
    cleanup.callback(process_stop, process)
    stack.base_url = f"127.0.0.1:{port}"


# --- the fixture rows -------------------------------------------------------------------------
@dataclass
class Fixture:
    judge: Any
    config: ModelConfig
    cookies: list[str]  # judge first, then observers


def fixture_create(watchers: int, tokens: int) -> Fixture:
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from core.roles import Role
    from llm.backends.bundled import BUNDLED_MODEL_ID
    from llm.models import ModelConfig

    def cookie(user: User) -> str:
        client = Client()
        client.force_login(user)
        name = settings.SESSION_COOKIE_NAME
        return f"{name}={client.cookies[name].value}"

    judge = User.objects.create_user("bench-judge")
    judge.groups.add(Group.objects.get(name=Role.ANNOTATOR))
    researchers = Group.objects.get(name=Role.RESEARCHER)
    observers = []
    for i in range(1, watchers):
        user = User.objects.create_user(f"bench-observer-{i}")
        user.groups.add(researchers)
        observers.append(user)
    config = ModelConfig.objects.create(
        name="bench debater", model=BUNDLED_MODEL_ID, temperature=0.0, max_new_tokens=tokens,
        timeout_s=3600.0,  # a loaded machine runs far below 1 token/s
    )  # fmt: skip
    return Fixture(judge=judge, config=config, cookies=[cookie(u) for u in [judge, *observers]])


def speech_create(fixture: Fixture) -> Speech:
    """A debate in round 1 with one queued speech: what speeches_generate expects to find.

    Built with the ORM rather than debate_prior_submit, which would also enqueue a Celery
    task on the broker (a real worker on a shared Redis could pick it up).
    """
    from debate.models import Debate, DebateStatus, Protocol, Side, Speech

    debate = Debate.objects.create(
        question=QUESTION, answer_a=ANSWER_A, answer_b=ANSWER_B, correct_side=Side.A,
        passage=PASSAGE, protocol=Protocol.DEBATE, max_rounds=1,
        # Large enough that the token budget (limit // 3 + 16) and the final cut never bind.
        speech_char_limit=10_000, quote_char_limit=250,
        debater_a_config=fixture.config, debater_b_config=fixture.config,
        judge=fixture.judge, created_by=fixture.judge,
        status=DebateStatus.GENERATING, current_round=1,
    )  # fmt: skip
    return Speech.objects.create(debate=debate, round=1, side=Side.A)


# --- the producer side: timestamps as the backend yields --------------------------------------
@dataclass
class Probe:
    """One generation, seen from the decode loop (and the publisher's two steps)."""

    messages: Sequence[ChatMessage] = ()
    params: GenerationParams | None = None
    t_call: float = 0.0
    t_end: float = 0.0
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (yielded at, end offset)
    text: str = ""
    usage: Usage | None = None
    save_s: list[float] = field(default_factory=list)
    send_s: list[float] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        assert self.usage is not None
        return self.usage.completion_tokens

    @property
    def rate(self) -> float:
        return self.tokens / (self.t_end - self.t_call)


class TimedBackend:
    """The real backend, with the moment each chunk is yielded written down."""

    def __init__(self, backend: Backend, probe: Probe) -> None:
        self.backend = backend
        self.probe = probe

    def stream_chat(
        self, messages: Sequence[ChatMessage], *, params: GenerationParams
    ) -> Iterator[StreamChunk]:
        probe = self.probe
        probe.messages, probe.params = list(messages), params
        probe.t_call = time.perf_counter()
        for chunk in self.backend.stream_chat(messages, params=params):
            now = time.perf_counter()
            if chunk.text:
                probe.text += chunk.text
                probe.chunks.append((now, len(probe.text)))
            if chunk.usage is not None:
                probe.usage = chunk.usage
                probe.t_end = now
            yield chunk

    def generate_batch(self, chats: Any, *, params: GenerationParams) -> Any:
        return self.backend.generate_batch(chats, params=params)

    def stream_batch(self, chats: Sequence[Sequence[ChatMessage]], *, params: GenerationParams
                     ) -> Iterator[RowChunk]:  # fmt: skip
        """A live speech is a batch of one: its row is what the probe records."""
        probe = self.probe
        probe.messages, probe.params = list(chats[0]), params
        probe.t_call = time.perf_counter()
        for row_chunk in self.backend.stream_batch(chats, params=params):
            now, chunk = time.perf_counter(), row_chunk.chunk
            if row_chunk.row == 0 and chunk.text:
                probe.text += chunk.text
                probe.chunks.append((now, len(probe.text)))
            if row_chunk.row == 0 and chunk.usage is not None:
                probe.usage = chunk.usage
                probe.t_end = now
            yield row_chunk


@contextlib.contextmanager
def instrumented(probe: Probe) -> Iterator[None]:
    """Time the decode loop, and the publisher's save and group_send, without changing them."""
    import core.streams
    import debate.generation
    import llm.generation

    backend_for = llm.generation.backend_for
    stream_send = core.streams.stream_send
    text_save = debate.generation.speech_text_save

    def timed_backend_for(config: ModelConfig) -> Any:
        return TimedBackend(backend_for(config), probe)

    def timed_send(group: str, event: dict[str, Any]) -> None:
        start = time.perf_counter()
        stream_send(group, event)
        probe.send_s.append(time.perf_counter() - start)

    def timed_save(speech_id: int, attempt: int, text: str, tokens: int) -> None:
        start = time.perf_counter()
        text_save(speech_id, attempt, text, tokens)
        probe.save_s.append(time.perf_counter() - start)

    with (
        mock.patch.object(llm.generation, "backend_for", timed_backend_for),
        mock.patch.object(core.streams, "stream_send", timed_send),
        mock.patch.object(debate.generation, "speech_text_save", timed_save),
    ):
        yield


# --- the client side: websockets on one asyncio loop in a thread ------------------------------
class ClientLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ws-clients", daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


@dataclass
class Watcher:
    """One browser: rebuilds the speech text as htmx would, and notes when it grew."""

    stream: str
    text: str = ""
    frames: int = 0
    events: list[tuple[float, int]] = field(default_factory=list)  # (received at, length)
    target: int | None = None
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._delta_head = f'<span id="{self.stream}-text" hx-swap-oob="beforeend">'
        self._snapshot = re.compile(
            rf'class="speech-text streaming" id="{re.escape(self.stream)}-text">([^<]*)</div>'
        )

    def on_frame(self, at: float, frame: str | bytes) -> None:
        assert isinstance(frame, str)
        self.frames += 1
        if frame.startswith(self._delta_head) and frame.endswith("</span>"):
            self.text += html.unescape(frame[len(self._delta_head) : -len("</span>")])
        elif match := self._snapshot.search(frame):
            # A snapshot replaces the transcript: the page then shows exactly its text.
            self.text = html.unescape(match.group(1))
        else:
            return  # the finished speech's snapshot, or other parts of the page
        self.events.append((at, len(self.text)))
        self.check()

    def check(self) -> None:
        if self.target is not None and len(self.text) >= self.target:
            self.caught_up.set()

    def received_at(self, offset: int) -> float | None:
        """When this client first held the text up to `offset`."""
        lengths = [length for _, length in self.events]
        i = bisect_left(lengths, offset)
        return self.events[i][0] if i < len(self.events) else None


async def watch(
    url: str, cookies: list[str], stream: str, origin: str, started: threading.Event,
    streamed: Future[str],
) -> tuple[list[Watcher], float]:  # fmt: skip
    """Connect every client, wait for each first snapshot, then listen until all hold the
    streamed text (or GRACE_S after the generation ended)."""
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    watchers = [Watcher(stream) for _ in cookies]

    async def open_socket(watcher: Watcher, cookie: str) -> ClientConnection:
        ws = await connect(
            url, origin=Origin(origin), additional_headers={"Cookie": cookie}, proxy=None,
            max_size=None, ping_interval=None, open_timeout=60,
        )  # fmt: skip
        watcher.on_frame(time.perf_counter(), await ws.recv())
        return ws

    async def listen(watcher: Watcher, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                watcher.on_frame(time.perf_counter(), frame)

    start = time.perf_counter()
    sockets = await asyncio.wait_for(
        asyncio.gather(*(open_socket(w, c) for w, c in zip(watchers, cookies, strict=True))), 90
    )
    connect_s = time.perf_counter() - start
    listeners = [
        asyncio.create_task(listen(w, ws)) for w, ws in zip(watchers, sockets, strict=True)
    ]
    try:
        started.set()
        text = await asyncio.wrap_future(streamed)
        for watcher in watchers:
            watcher.target = len(text)
            watcher.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(w.caught_up.wait() for w in watchers)), GRACE_S)
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return watchers, connect_s


# --- one live run -----------------------------------------------------------------------------
@dataclass
class LiveRun:
    probe: Probe
    watchers: list[Watcher]
    connect_s: float
    saved_text: str
    status: str

    def complete(self, watcher: Watcher) -> bool:
        return watcher.text == self.probe.text

    def client_rate(self, watcher: Watcher) -> float | None:
        done_at = watcher.received_at(len(self.probe.text))
        if done_at is None:
            return None
        return self.probe.tokens / (done_at - self.probe.t_call)

    def delays_ms(self, *, first: int | None = None, skip: int = 0) -> list[float]:
        chunks = self.probe.chunks[skip : None if first is None else skip + first]
        delays = []
        for watcher in self.watchers:
            for yielded_at, offset in chunks:
                got = watcher.received_at(offset)
                if got is not None:
                    delays.append((got - yielded_at) * 1000)
        return delays


def live_run(stack: Stack, clients: ClientLoop, fixture: Fixture, watchers: int) -> LiveRun:
    from debate.generation import speeches_generate

    speech = speech_create(fixture)
    started = threading.Event()
    streamed: Future[str] = Future()
    watching = clients.submit(
        watch(
            f"ws://{stack.base_url}/ws/debates/{speech.debate_id}/", fixture.cookies[:watchers],
            speech.stream_key, f"http://{stack.base_url}", started, streamed,
        )
    )  # fmt: skip
    while not started.wait(0.1):
        if watching.done():
            watching.result()  # raises: the clients could not connect
    probe = Probe()
    try:
        with instrumented(probe):
            speeches_generate(speech_ids=[speech.pk])
    except BaseException as exc:
        streamed.set_exception(exc)
        raise
    streamed.set_result(probe.text)
    found, connect_s = watching.result(timeout=GRACE_S + 60)
    speech.refresh_from_db()
    if speech.status != "done" or probe.usage is None:
        raise RuntimeError(f"speech {speech.pk} ended {speech.status}: {speech.error}")
    return LiveRun(probe, found, connect_s, saved_text=speech.text, status=speech.status)


def baseline_run(backend: Backend, messages: Sequence[ChatMessage], params: Any) -> Probe:
    probe = Probe()
    for _ in TimedBackend(backend, probe).stream_chat(messages, params=params):
        pass
    return probe


# --- (4) a simultaneous round through the real worker -----------------------------------------
ROUND_TARGET = 1.25


def worker_start(stack: Stack, cleanup: contextlib.ExitStack) -> None:
    """A real `celery worker` on the generation queue, on this run's database and Redis:
    solo pool, one generation at a time, as README's deployment runs it."""
    from bench.serving import process_stop
    from config.celery import app
    from config.embedded import die_with_parent

    log_path = stack.var_dir / "log" / "worker.log"
    name = f"bench-generation-{os.getpid()}@%h"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
             "--queues", "generation", "--hostname", name, "--loglevel", "WARNING"],
            cwd=ROOT, env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )  # fmt: skip
    cleanup.callback(process_stop, process)
    deadline = time.monotonic() + 120
    while not app.control.ping(destination=[name.replace("%h", socket.gethostname())],
                               timeout=0.5):  # fmt: skip
        if process.poll() is not None or time.monotonic() > deadline:
            raise SetupError(f"the Celery worker did not start; see {log_path}")


async def watch_round(url: str, cookie: str, origin: str, opened: threading.Event,
                      timeout_s: float) -> float:  # fmt: skip
    """The judge's socket: when it first shows the round over (both speeches done)."""
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    async with connect(url, origin=Origin(origin), additional_headers={"Cookie": cookie},
                       proxy=None, max_size=None, ping_interval=None) as ws:  # fmt: skip
        await ws.recv()  # the first snapshot
        opened.set()
        async with asyncio.timeout(timeout_s):
            async for frame in ws:
                if isinstance(frame, str) and "waiting for the judge</span>" in frame:
                    return time.perf_counter()
    raise RuntimeError("the socket closed before the round ended")


@dataclass
class RoundRun:
    wall_s: float
    tokens: list[int]
    prompts: list[list[ChatMessage]]


def round_run(stack: Stack, clients: ClientLoop, fixture: Fixture) -> RoundRun:
    """From the judge's prior to the judge's socket showing both speeches done."""
    from debate.generation import speech_prompt
    from debate.models import Debate, Protocol, Side, Speech
    from debate.services import debate_prior_submit

    debate = Debate.objects.create(
        question=QUESTION, answer_a=ANSWER_A, answer_b=ANSWER_B, correct_side=Side.A,
        passage=PASSAGE, protocol=Protocol.DEBATE, max_rounds=1, speech_char_limit=10_000,
        quote_char_limit=250, debater_a_config=fixture.config,
        debater_b_config=fixture.config, judge=fixture.judge, created_by=fixture.judge,
    )  # fmt: skip
    opened = threading.Event()
    ended = clients.submit(watch_round(
        f"ws://{stack.base_url}/ws/debates/{debate.pk}/", fixture.cookies[0],
        f"http://{stack.base_url}", opened, 900,
    ))  # fmt: skip
    if not opened.wait(90):
        ended.result(timeout=1)
        raise SetupError("the judge's socket did not open")
    start = time.perf_counter()
    debate_prior_submit(debate_id=debate.pk, judge=fixture.judge, probability_a=50)
    end = ended.result(timeout=960)
    speeches = list(Speech.objects.filter(debate=debate).order_by("side"))
    if any(speech.status != "done" for speech in speeches):
        raise RuntimeError(f"round of debate {debate.pk} ended {[s.status for s in speeches]}")
    return RoundRun(end - start, [s.completion_tokens or 0 for s in speeches],
                    [speech_prompt(s) for s in speeches])  # fmt: skip


def bare_batch_s(backend: Backend, prompts: list[list[ChatMessage]], params: Any) -> float:
    start = time.perf_counter()
    backend.generate_batch(prompts, params=params)
    return time.perf_counter() - start


# --- reporting --------------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def verdict(ok: bool, target: str) -> str:
    return f"{'PASS' if ok else 'FAIL'} {target}"


def ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tokens", type=int, default=96, help="new tokens per speech")
    parser.add_argument("--rounds", type=int, default=3,
                        help="baseline / 1-watcher pairs (0: skip (1)-(3))")  # fmt: skip
    parser.add_argument("--watchers", type=int, default=50, help="clients on one debate for (3)")
    parser.add_argument("--watch-rounds", type=int, default=2, help="runs with all watchers")
    parser.add_argument("--round-runs", type=int, default=2,
                        help="(4) simultaneous rounds through the worker (0: skip)")  # fmt: skip
    args = parser.parse_args()
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, str, str]] = []

    with contextlib.ExitStack() as cleanup:
        stack = stack_prepare(cleanup)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        cleanup.callback(connections.close_all)
        start = time.perf_counter()
        call_command("migrate", verbosity=0)
        fixture = fixture_create(args.watchers, args.tokens)
        server_start(stack, cleanup)
        setup_s = time.perf_counter() - start
        clients = ClientLoop()
        cleanup.callback(clients.close)

        from llm.generation import backend_for

        start = time.perf_counter()
        backend = backend_for(fixture.config)
        load_s = time.perf_counter() - start
        print(f"database: {stack.database}\nredis:    {stack.redis}\nserver:   uvicorn "
              f"(own process) on {stack.base_url}", flush=True)  # fmt: skip

        # Warm-up: loads the consumer's code paths and the channel layer in the server, runs
        # the model's first passes, and captures the exact prompt the live path builds.
        params: GenerationParams | None = fixture.config.generation_params()
        if args.rounds:
            warm = live_run(stack, clients, fixture, 1)
            messages, params = warm.probe.messages, warm.probe.params
        baselines: list[Probe] = []
        singles: list[LiveRun] = []
        for i in range(args.rounds):  # interleaved: drift in machine load hits both alike
            baselines.append(baseline_run(backend, messages, params))
            singles.append(live_run(stack, clients, fixture, 1))
            print(f"round {i + 1}/{args.rounds}: baseline {baselines[-1].rate:.1f} tok/s, "
                  f"live {singles[-1].client_rate(singles[-1].watchers[0]) or 0:.1f} tok/s",
                  flush=True)  # fmt: skip
        crowds: list[LiveRun] = []
        crowd_baselines: list[Probe] = []
        for i in range(args.watch_rounds if args.rounds else 0):
            crowd_baselines.append(baseline_run(backend, messages, params))
            crowds.append(live_run(stack, clients, fixture, args.watchers))
            done = sum(crowds[-1].complete(w) for w in crowds[-1].watchers)
            print(
                f"{args.watchers} watchers, run {i + 1}/{args.watch_rounds}: baseline "
                f"{crowd_baselines[-1].rate:.1f} tok/s, {done}/{args.watchers} complete",
                flush=True,
            )

        round_pairs: list[tuple[RoundRun, float]] = []
        if args.round_runs:
            worker_start(stack, cleanup)
            round_run(stack, clients, fixture)  # warm-up: the worker loads the model
            for i in range(args.round_runs):
                live = round_run(stack, clients, fixture)
                bare = bare_batch_s(backend, live.prompts, params)
                round_pairs.append((live, bare))
                print(f"round {i + 1}/{args.round_runs}: worker + websocket {live.wall_s:.1f} s "
                      f"({live.tokens} tokens), bare generate_batch {bare:.1f} s",
                      flush=True)  # fmt: skip

    busy = max(load_before, os.getloadavg()[0]) > (os.cpu_count() or 1)
    if singles:  # --rounds 0: only (4)
        report(rows, args, baselines, singles, crowd_baselines, crowds, load_s, setup_s)
    for i, (live, bare) in enumerate(round_pairs, 1):
        ratio = live.wall_s / bare
        rows.append((
            f"(4) run {i}: simultaneous round, prior -> judge's socket",
            f"{live.wall_s:.1f} s",
            f"{ratio:.2f}x of one bare generate_batch ({bare:.1f} s, same two prompts); "
            f"{verdict(ratio <= ROUND_TARGET, '<= 1.25x')}; tokens {live.tokens}",
        ))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure'.ljust(width)}  {'value':>14}  ratio / target")
    print(f"{'-' * width}  {'-' * 14}  {'-' * 40}")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>14}  {note}")
    print(f"\ntotal {time.perf_counter() - began:.0f} s (set-up and clean-up included)")
    loads = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    print(f"1-minute load average: {loads}, on {os.cpu_count()} CPUs", end="")
    print(" (busy machine: ratios are fairer than absolute rates)" if busy else "")
    return 0


def report(
    rows: list[tuple[str, str, str]], args: argparse.Namespace, baselines: list[Probe],
    singles: list[LiveRun], crowd_baselines: list[Probe], crowds: list[LiveRun],
    load_s: float, setup_s: float,
) -> None:  # fmt: skip
    def add(name: str, value: str, note: str = "") -> None:
        rows.append((name, value, note))

    add("set-up: migrate, users, uvicorn", f"{setup_s:.1f} s")
    add("model load (cached checkpoint)", f"{load_s:.2f} s")

    # (1) rate. Each live run is paired with the baseline run just before it, so that drift
    # in machine load (other processes) hits both sides of a ratio alike.
    base = statistics.median(p.rate for p in baselines + crowd_baselines)
    counts = "/".join(map(str, sorted({p.tokens for p in baselines + [r.probe for r in singles]})))
    add("(1) stream_chat alone", f"{base:.1f} tok/s", f"baseline, {counts} tok, median")
    rate = statistics.median(r.client_rate(r.watchers[0]) or 0.0 for r in singles)
    pairs = [
        (r.client_rate(r.watchers[0]) or 0.0) / b.rate
        for r, b in zip(singles, baselines, strict=True)
    ]
    ratio = statistics.median(pairs)
    add(
        "(1) at the websocket client, 1 watcher",
        f"{rate:.1f} tok/s",
        f"{ratio:.2f}x  {verdict(ratio >= RATE_TARGET, '>= 0.9x')}  (median of pairs)",
    )
    add("(1)   per pair: client / baseline", " ".join(f"{x:.2f}x" for x in pairs))
    produced = statistics.median(r.probe.rate for r in singles)
    decode = statistics.median(
        r.probe.rate / b.rate for r, b in zip(singles, baselines, strict=True)
    )
    add(
        "(1)   decode loop inside speeches_generate",
        f"{produced:.1f} tok/s",
        f"{decode:.2f}x  (the publisher runs inside this loop)",
    )
    same_text = all(r.probe.text == baselines[0].text for r in singles + crowds)
    add("(1)   greedy text identical to baseline", "yes" if same_text else "NO")

    # (2) delay, one watcher
    delays = [d for r in singles for d in r.delays_ms()]
    median = statistics.median(delays)
    add(
        "(2) chunk -> client delay, 1 watcher, median",
        ms(median),
        verdict(median <= DELAY_TARGET_MS, "<= 150 ms"),
    )
    add(
        "(2)   p95 / max",
        f"{ms(pct(delays, 0.95))} / {ms(max(delays))}",
        f"{len(delays)} chunks over {len(singles)} runs",
    )
    whole = sum(r.complete(r.watchers[0]) for r in singles)
    add("(2)   client text == streamed text", f"{whole}/{len(singles)} runs")
    exact = sum(r.saved_text == r.probe.text for r in singles + crowds)
    stripped = sum(r.saved_text == r.probe.text.strip() for r in singles + crowds)
    add(
        "saved speech text == streamed text",
        f"{exact}/{len(singles + crowds)} runs",
        f"{stripped}/{len(singles + crowds)} equal to the streamed text .strip()",
    )

    # (3) many watchers
    n = args.watchers
    for i, run in enumerate(crowds, 1):
        ok = sum(run.complete(w) for w in run.watchers)
        note = verdict(ok == n, f"{n}/{n}")
        if ok < n:
            short = [len(w.text) for w in run.watchers if not run.complete(w)]
            note += f", incomplete lengths {short[:5]} of {len(run.probe.text)}"
        add(f"(3) run {i}: watchers complete and in order", f"{ok}/{n}", note)
    if crowds:
        crowd = [d for r in crowds for d in r.delays_ms()]
        median = statistics.median(crowd)
        add(
            f"(3) chunk -> client delay, {n} watchers, median",
            ms(median),
            verdict(median <= DELAY_TARGET_MS, "<= 150 ms"),
        )
        add(
            "(3)   p95 / max",
            f"{ms(pct(crowd, 0.95))} / {ms(max(crowd))}",
            f"{len(crowd)} chunk deliveries",
        )
        early = [d for r in crowds for d in r.delays_ms(first=10)]
        later = [d for r in crowds for d in r.delays_ms(skip=10)]
        if early and later:
            add(
                "(3)   median, first 10 chunks / the rest",
                f"{ms(statistics.median(early))} / {ms(statistics.median(later))}",
                "at the start every consumer re-renders a snapshot",
            )
        mids, worsts, decodes = [], [], []
        for run, b in zip(crowds, crowd_baselines, strict=True):
            rates = [x / b.rate for w in run.watchers if (x := run.client_rate(w)) is not None]
            if rates:
                mids.append(statistics.median(rates))
                worsts.append(min(rates))
            decodes.append(run.probe.rate / b.rate)
        if mids:
            add(
                f"(3) at the client, {n} watchers: median / slowest",
                f"{statistics.median(mids):.2f}x / {min(worsts):.2f}x",
                f"of the paired baseline; {verdict(min(worsts) >= RATE_TARGET, '>= 0.9x')}",
            )
        crowd_rate = statistics.median(r.probe.rate for r in crowds)
        add(
            f"(3)   decode loop with {n} watchers",
            f"{crowd_rate:.1f} tok/s",
            f"{statistics.median(decodes):.2f}x of the paired baseline",
        )
        connect_s = statistics.median(r.connect_s for r in crowds)
        add(f"(3)   {n} sockets open + first snapshot", f"{connect_s:.2f} s")

    # where the time goes in TextStreamPublisher.flush
    for label, runs in (("1 watcher", singles), (f"{n} watchers", crowds)):
        if not runs:
            continue
        saves = [s * 1000 for r in runs for s in r.probe.save_s]
        sends = [s * 1000 for r in runs for s in r.probe.send_s]
        wall = sum(r.probe.t_end - r.probe.t_call for r in runs) * 1000
        flushes = statistics.median(len(r.probe.send_s) for r in runs)
        chunks = statistics.median(len(r.probe.chunks) for r in runs)
        add(
            f"flush, {label}: save text (UPDATE)",
            ms(statistics.median(saves)),
            f"p95 {ms(pct(saves, 0.95))}; {sum(saves) / wall:.0%} of decode time",
        )
        add(
            f"flush, {label}: group_send (stream_send)",
            ms(statistics.median(sends)),
            f"p95 {ms(pct(sends, 0.95))}; {sum(sends) / wall:.0%} of decode time; "
            f"{flushes:.0f} flushes / {chunks:.0f} chunks",
        )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SetupError as exc:
        print(f"set-up failed: {exc}", file=sys.stderr)
        sys.exit(2)
