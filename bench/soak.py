"""Soak with faults: the deployment of deploy/ on this machine, driven hard, with faults.

Run (on demand, never in CI; minutes, most of it model time):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter .venv/bin/python bench/soak.py \\
        [--minutes 10] [--annotators 20] [--judges 50] [--replicas 2]

The shape, all real processes started through config/run.py's commands (logs in var/soak/log/):
PostgreSQL (a scratch database `<name>_soak` beside DATABASE_URL's, created afresh and dropped
at the end unless --keep), a private redis-server on a free port, --replicas uvicorn replicas
behind a private nginx running deploy/nginx/arbiter.conf.template (rendered by
deploy/render_nginx.py; its own port, pid and logs, in the foreground), a Celery worker per
queue (generation, training, default) and one beat.

Measured in the same run:
  (0) baseline: the annotators straight to one replica, no proxy, no faults (--baseline-s);
  (1) the soak: the annotators label in a closed loop through nginx (API: next, then submit
      with a client_request_id, retried with the same id after a lost answer); --judges
      websockets (one judge, the rest observers) watch live debates through nginx, one debate
      after another, reconnecting as a browser does; one reward-model training and one tree
      expansion run on the workers;
  (2) faults at 15, 35, 55 and 75 % of the run: SIGKILL a web replica (restarted 10 s later),
      SIGKILL the generation worker while a speech streams (restarted at once), restart Redis,
      SIGKILL the training worker while a reward model trains (restarted at once);
a fault that waits for its moment on a slow machine extends the run (the load goes on until
the last fault is injected and recovered); then a drain (until no job is left running, at most
--drain-minutes), and the report: labels
acknowledged against rows stored (lost, duplicated), each judge's transcript against the
stored speech, job states, p50/p95 of next and submit outside and inside each fault window
(the min(30 s, 15 % of the run) after an injection), recovery times, and the claim rules.
Exits 1 if anything was lost, duplicated, stuck or wrong.

Deployment defaults throughout (a killed training run is failed and retried after
REWARD_LEASE_SECONDS, 120 s; a speech whose worker died is restarted by beat's sweeper after
SPEECH_STALE_AFTER, 2 min), except WORKER_CONCURRENCY=1: the training and default workers run
one process each on 2 cores. (A 30 s lease was tried: on a loaded machine a healthy run's
model load outlasted it, and its retries were reaped in turn.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
SOAK_DIR = ROOT / "var" / "soak"
FAULT_AT = {"web": 0.15, "generation": 0.35, "redis": 0.55, "training": 0.75}
WEB_DOWN_S = 10.0  # how long nginx must route around the killed replica before its restart
K = 3


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Any, timeout_s: float, every_s: float = 0.5) -> float:
    """Poll `check()` until true; seconds it took. RuntimeError naming `what` on timeout."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            raise RuntimeError(f"{what}: not within {timeout_s:g} s")
        time.sleep(every_s)
    return time.monotonic() - start


def answers(port: int, path: str = "/healthz") -> bool:
    """Any HTTP answer at all (a 503 from /healthz still means the replica serves)."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path)
        connection.getresponse().read()
        connection.close()
        return True
    except OSError:
        return False


def healthy(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/healthz")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


# --- the deployment -----------------------------------------------------------------------
@dataclass
class Deployment:
    """The processes of deploy/'s shape, each in its own session so a fault kills a whole
    process group (a Celery worker with its pool), as losing a machine or container would.

    `manage`, called from the main thread only, is the process manager: like systemd's
    Restart=always (deploy/systemd/) it starts again any process that is not running, after
    its hold if a fault set one. A fault only kills. Starts happen on the main thread because
    the children die with the thread that started them (config.embedded.die_with_parent)."""

    supervisor: Any  # config.run.Supervisor
    redis_port: int
    nginx_port: int
    web_ports: list[int]
    redis_dir: Path
    commands: dict[str, list[str]] = field(default_factory=dict)
    held_until: dict[str, float] = field(default_factory=dict)  # name: monotonic time
    expected: set[str] = field(default_factory=set)  # killed by a fault, not yet restarted
    crashes: list[tuple[float, str, str]] = field(default_factory=list)  # (when, name, log)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, name: str, command: list[str]) -> None:
        self.commands[name] = command
        self.supervisor.start(name, command)

    def start_redis(self) -> None:
        self.start("redis", [
            shutil.which("redis-server") or "redis-server", "--port", str(self.redis_port),
            # As deployed (README, "Deploying"): the queued jobs are in Redis, so it keeps an
            # append-only file; without one a restart loses every task not yet taken.
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
            "--appendfsync", "everysec", "--dir", str(self.redis_dir),
        ])  # fmt: skip

    def redis_up(self) -> bool:
        from config.embedded import redis_answers

        return redis_answers(f"redis://127.0.0.1:{self.redis_port}")

    def start_web(self, n: int) -> None:
        from config.run import web_command

        self.start(f"web-{n + 1}", web_command(host="127.0.0.1", port=self.web_ports[n]))

    def start_worker(self, queue: str) -> None:
        from config.run import worker_command

        hostname = f"soak-{queue}-{os.getpid()}@%h"
        self.start(queue, worker_command(queues=queue, hostname=hostname))

    def kill(self, name: str, *, sig: int = signal.SIGKILL, hold_s: float = 0.0) -> None:
        """A fault (any thread): signal the process group; the manager restarts it after
        `hold_s`."""
        with self.lock:
            process = self.supervisor.processes[name]
            self.expected.add(name)
            self.held_until[name] = time.monotonic() + hold_s
            with contextlib.suppress(ProcessLookupError):
                if sig == signal.SIGKILL:
                    os.killpg(process.pid, sig)
                else:
                    process.send_signal(sig)

    def manage(self) -> None:
        with self.lock:
            for name, process in list(self.supervisor.processes.items()):
                if process.poll() is None or time.monotonic() < self.held_until.get(name, 0):
                    continue
                if name not in self.expected:
                    say(f"{name} exited by itself (status {process.returncode}): restarting it")
                    self.crashes.append((time.monotonic(), name, self.supervisor.tail(name, 4)))
                self.expected.discard(name)
                self.supervisor.start(name, self.commands[name])

    def wait(self, what: str, check: Any, timeout_s: float) -> bool:
        """Poll `check()` while managing the processes; False at the timeout."""
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                say(f"{what}: not within {timeout_s:g} s")
                return False
            self.manage()
            time.sleep(0.25)
        return True


class CpuMeter:
    """Where the cores went: CPU seconds (user + system) of every process on the machine,
    sampled each second from /proc and summed by who it belongs to: a deployment process with
    its process group (a worker's pool included), PostgreSQL's backends, this process (the
    annotators' and judges' clients) and the rest. A process that exits loses at most its
    last second."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.first: dict[int, int] = {}  # pid: ticks when first seen
        self.last: dict[int, tuple[str, int]] = {}  # pid: (owner, ticks last seen)
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self.sample()
        self.first = {pid: ticks for pid, (_, ticks) in self.last.items()}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        groups = {process.pid: name for name, process in
                  list(self.deployment.supervisor.processes.items())}  # fmt: skip
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid pgrp …": comm may hold spaces, so split after its ")".
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            pid, pgrp, ticks = int(entry.name), int(fields[2]), int(fields[11]) + int(fields[12])
            if pid == os.getpid():
                owner = "the soak's clients (this process)"
            elif pgrp in groups:
                owner = groups[pgrp]
            elif comm.startswith("postgres"):
                owner = "postgresql"
            else:
                owner = "other"
            self.last[pid] = (owner, ticks)

    def report(self) -> tuple[float, dict[str, float]]:
        """Wall seconds since the start and CPU seconds per owner over them."""
        self.stop.set()
        self.thread.join()
        self.sample()
        hertz = os.sysconf("SC_CLK_TCK")
        seconds: dict[str, float] = {}
        for pid, (owner, ticks) in self.last.items():
            used = (ticks - self.first.get(pid, 0)) / hertz
            seconds[owner] = seconds.get(owner, 0.0) + used
        return time.monotonic() - self.t0, seconds


def nginx_start(deployment: Deployment, static_root: Path) -> None:
    """deploy/'s site config under a main config of our own: foreground, own pid and logs."""
    from deploy.render_nginx import site_render

    servers = [f"127.0.0.1:{port}" for port in deployment.web_ports]
    site = site_render(
        listen=f"127.0.0.1:{deployment.nginx_port}", static_root=str(static_root), servers=servers
    )
    conf_dir = SOAK_DIR / "nginx"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "arbiter.conf").write_text(site)
    temp = conf_dir / "temp"
    temp.mkdir(exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers may read var/ as we do
    (conf_dir / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {conf_dir / 'nginx.pid'};\n"
        f"error_log {SOAK_DIR / 'log' / 'nginx-error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n  include /etc/nginx/mime.types;\n"
        f"  access_log {SOAK_DIR / 'log' / 'nginx-access.log'};\n"
        + "".join(
            f"  {kind}_temp_path {temp / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  include {conf_dir / 'arbiter.conf'};\n}}\n"
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    command = [nginx, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf"),
               "-e", str(SOAK_DIR / "log" / "nginx-error.log")]  # fmt: skip
    subprocess.run([*command, "-t", "-q"], check=True)
    deployment.start("nginx", command)
    wait_for("nginx", lambda: answers(deployment.nginx_port, "/static/css/arbiter.css"), 20)


# --- the fixture rows ---------------------------------------------------------------------
@dataclass
class Fixture:
    queue_id: int
    tokens: list[str]
    cookies: list[str]  # the judge first, then observers
    judge_id: int
    config_id: int
    reward_model_id: int


def fixture_create(args: argparse.Namespace) -> Fixture:
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from annotations.kinds import PairwisePayload
    from annotations.models import Item, Label, Queue, QueueMember
    from annotations.services import (
        NewItem,
        api_token_create,
        queue_items_create,
        queue_members_set,
    )
    from core.roles import Role
    from llm.backends.bundled import BUNDLED_MODEL_ID
    from llm.models import ModelConfig
    from rewards.models import RewardModel
    from rewards.services import reward_model_save

    annotators = Group.objects.get(name=Role.ANNOTATOR)
    researchers = Group.objects.get(name=Role.RESEARCHER)
    people = [User.objects.create_user(username=f"bench-{n}") for n in range(args.annotators)]
    for user in people:
        user.groups.add(annotators)
    queue = Queue.objects.create(name="soak", kind="pairwise", labels_per_item=K)
    queue_members_set(queue=queue, users=people)
    text = "An answer of a realistic length, written by a model for a person to judge. " * 4
    # Enough that nobody runs out: about 15 labels/s an annotator at most, k labels an item,
    # and a run extended by late faults.
    items = max(5000, args.annotators * int(args.minutes * 60 + 300) * 15 // K)
    for offset in range(0, items, 10_000):
        queue_items_create(queue=queue, items=[
            NewItem(payload=PairwisePayload(prompt=f"Question {n}?", response_a=text + "A",
                                            response_b=text + "B"), external_id=str(n))
            for n in range(offset, min(items, offset + 10_000))
        ])  # fmt: skip
    tokens = [api_token_create(user=user, name="soak") for user in people]

    def cookie(user: Any) -> str:
        client = Client()
        client.force_login(user)
        name = settings.SESSION_COOKIE_NAME
        return f"{name}={client.cookies[name].value}"

    judge = User.objects.create_user("soak-judge")
    judge.groups.add(annotators)
    observers = [User.objects.create_user(f"soak-observer-{n}") for n in range(1, args.judges)]
    for user in observers:
        user.groups.add(researchers)
    config = ModelConfig.objects.create(
        name="soak debater", model=BUNDLED_MODEL_ID, temperature=0.0,
        max_new_tokens=args.tokens, timeout_s=3600.0,
    )  # fmt: skip

    # The reward model's own queue, labelled already: training has its data from the start.
    trainer = User.objects.create_user("soak-trainer")
    reward_queue = Queue.objects.create(name="soak rewards", kind="pairwise", labels_per_item=1)
    QueueMember.objects.create(queue=reward_queue, user=trainer)
    # Not bench/reward_training.make_pairs: importing that bench points this process at its
    # own scratch var dir and the embedded Redis.
    pairs = [
        (f"Explain tides (case {n}).", f"Tides follow the moon's pull on the sea ({n}).",
         f"Tides happen because fish swim in groups ({n}).")
        for n in range(args.reward_pairs)
    ]  # fmt: skip
    queue_items_create(queue=reward_queue, items=[
        NewItem(payload=PairwisePayload(prompt=p, response_a=good, response_b=bad))
        for p, good, bad in pairs
    ])  # fmt: skip
    rows = list(Item.objects.filter(queue=reward_queue))
    Label.objects.bulk_create(
        Label(queue=reward_queue, item=item, annotator=trainer, value={"choice": "a"},
              time_spent_ms=1, client_request_id=uuid.uuid4())
        for item in rows
    )  # fmt: skip
    Item.objects.filter(queue=reward_queue).update(label_count=1, complete=True)
    reward_model = reward_model_save(
        reward_model=RewardModel(name="soak", fast_every=10**6, full_every_hours=0),
        queues=[reward_queue], user=None,
    )  # fmt: skip
    return Fixture(
        queue_id=queue.pk, tokens=tokens,
        cookies=[cookie(user) for user in [judge, *observers]], judge_id=judge.pk,
        config_id=config.pk, reward_model_id=reward_model.pk,
    )  # fmt: skip


# --- annotators ---------------------------------------------------------------------------
@dataclass
class Sample:
    at: float  # seconds since the soak started, when the request was sent
    kind: str  # "next" or "submit"
    seconds: float


@dataclass
class Annotators:
    """Closed-loop labellers over the API. A submit whose answer is lost (a 5xx, a dropped
    connection) is sent again with the same client_request_id until it is answered."""

    port: int
    queue_id: int
    tokens: list[str]
    t0: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    samples: list[Sample] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)  # (at, what)
    acked: list[str] = field(default_factory=list)  # client_request_ids answered 200/201
    replayed: int = 0  # submits answered 200: a retry found the label already stored
    refused: list[str] = field(default_factory=list)  # 409s: the lease was gone
    gave_up: list[str] = field(default_factory=list)  # never answered before the end
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, seconds: float | None = None) -> list[threading.Thread]:
        self.t0 = time.monotonic()
        threads = [
            threading.Thread(target=self._annotate, args=(token,), daemon=True)
            for token in self.tokens
        ]
        for thread in threads:
            thread.start()
        if seconds is not None:
            time.sleep(seconds)
            self.stop.set()
            for thread in threads:
                thread.join()
        return threads

    def _call(self, connection: list[http.client.HTTPConnection], token: str, path: str,
              body: object, kind: str) -> tuple[int, Any]:  # fmt: skip
        """One request on a keep-alive connection; a dropped connection raises OSError (the
        connection is replaced)."""
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        start = time.monotonic()
        try:
            connection[0].request("POST", path, body=json.dumps(body), headers=headers)
            response = connection[0].getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            connection[0].close()
            connection[0] = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            with self.lock:
                self.errors.append((start - self.t0, f"{kind}: {type(error).__name__}"))
            raise OSError(str(error)) from error
        elapsed = time.monotonic() - start
        if response.status >= 500 or response.status == 429:
            with self.lock:
                self.errors.append((start - self.t0, f"{kind}: HTTP {response.status}"))
        elif response.status < 300:
            with self.lock:
                self.samples.append(Sample(start - self.t0, kind, elapsed))
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, None

    def _annotate(self, token: str) -> None:
        connection = [http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)]
        base = f"/api/queues/{self.queue_id}"
        while not self.stop.is_set():
            try:
                status, lease = self._call(connection, token, f"{base}/next", {}, "next")
            except OSError:
                time.sleep(0.2)
                continue
            if status == 204:
                return  # the queue is done for this annotator
            if status != 200:
                time.sleep(0.2)
                continue
            request_id = str(uuid.uuid4())
            body = {"assignment_id": lease["assignment_id"], "value": {"choice": "a"},
                    "time_spent_ms": 1000, "client_request_id": request_id}  # fmt: skip
            # Once sent, a submit is pursued to an answer even past the end of the run.
            for attempt in range(200):
                try:
                    status, _ = self._call(connection, token, f"{base}/labels", body, "submit")
                except OSError:
                    status = 0
                if status in (200, 201):
                    with self.lock:
                        self.acked.append(request_id)
                        self.replayed += status == 200
                    break
                if status == 409:
                    with self.lock:
                        self.refused.append(request_id)
                    break
                time.sleep(min(2.0, 0.1 * 2 ** min(attempt, 5)))
            else:
                with self.lock:
                    self.gave_up.append(request_id)


# --- judges -------------------------------------------------------------------------------
DELTA = re.compile(r'^<span id="speech-(\d+)-text" hx-swap-oob="beforeend">(.*)</span>$', re.S)
STREAMING = re.compile(r'<div class="speech-text streaming" id="speech-(\d+)-text">([^<]*)</div>')
FINISHED = re.compile(r'<div class="speech-text" id="speech-(\d+)-text">(.*?)</div>', re.S)


@dataclass
class Page:
    """What one judge's browser shows of a debate's speeches, rebuilt as htmx would."""

    streamed: dict[int, str] = field(default_factory=dict)  # text while streaming
    at_finish: dict[int, str] = field(default_factory=dict)  # streamed text when it finished
    finished: dict[int, str] = field(default_factory=dict)  # the finished card's HTML
    connects: int = 0

    def on_frame(self, frame: str) -> None:
        if match := DELTA.match(frame):
            speech = int(match.group(1))
            self.streamed[speech] = self.streamed.get(speech, "") + html.unescape(match.group(2))
            return
        for match in STREAMING.finditer(frame):
            self.streamed[int(match.group(1))] = html.unescape(match.group(2))
        for match in FINISHED.finditer(frame):
            speech = int(match.group(1))
            if speech in self.streamed and speech not in self.finished:
                self.at_finish[speech] = self.streamed[speech]
            self.finished[speech] = match.group(2)


async def judge_watch(url: str, origin: str, cookie: str, page: Page, stop: asyncio.Event,
                      connected: asyncio.Event) -> None:  # fmt: skip
    """One judge's socket, reconnected after a drop with a growing, jittered wait (as htmx's
    websocket extension does), until `stop`."""
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    failures = 0
    while not stop.is_set():
        try:
            async with connect(url, origin=Origin(origin), additional_headers={"Cookie": cookie},
                               proxy=None, max_size=None, open_timeout=30) as ws:  # fmt: skip
                page.connects += 1
                failures = 0
                connected.set()
                receiving = asyncio.ensure_future(_receive(ws, page))
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                receiving.cancel()
        except Exception:  # noqa: BLE001 - any failure to connect: wait and try again
            failures += 1
        if not stop.is_set():
            await asyncio.sleep(random.uniform(0, min(5.0, 0.5 * 2**failures)))


async def _receive(ws: Any, page: Page) -> None:
    with contextlib.suppress(Exception):
        async for frame in ws:
            if isinstance(frame, str):
                page.on_frame(frame)


@dataclass
class DebateResult:
    debate_id: int
    speech_ids: list[int]
    pages: list[Page]
    seconds: float


def tree_start(fixture: Fixture) -> int:
    """The one tree expansion: queued behind the first debate's round, on the same worker."""
    from django.contrib.auth.models import User

    from amplification.models import Tree
    from amplification.services import tree_create
    from llm.models import ModelConfig

    config = ModelConfig.objects.get(pk=fixture.config_id)
    tree = tree_create(
        tree=Tree(question="Why do lighthouses use a rotating beam?", decompose_config=config,
                  answer_config=config, compose_config=config, max_depth=1, max_children=2,
                  max_nodes=5),
        created_by=User.objects.get(pk=fixture.judge_id),
    )  # fmt: skip
    return tree.pk


def debates_drive(nginx_port: int, fixture: Fixture, stop: threading.Event, t0: float,
                  results: list[DebateResult], drain_until: list[float],
                  tree_ids: list[int]) -> None:  # fmt: skip
    """One live debate after another until `stop`, every judge watching it; a debate started
    before `stop` is watched to its end (bounded by drain_until[0])."""
    from django.contrib.auth.models import User
    from django.db import close_old_connections

    from bench.debate_stream import ANSWER_A, ANSWER_B, PASSAGE, QUESTION, ClientLoop
    from debate.models import Debate, Protocol, Side, Speech
    from debate.services import debate_prior_submit

    judge = User.objects.get(pk=fixture.judge_id)
    clients = ClientLoop()
    origin = f"http://127.0.0.1:{nginx_port}"
    try:
        while not stop.is_set():
            close_old_connections()
            debate = Debate.objects.create(
                question=QUESTION, answer_a=ANSWER_A, answer_b=ANSWER_B, correct_side=Side.A,
                passage=PASSAGE, protocol=Protocol.DEBATE, max_rounds=1,
                speech_char_limit=10_000, quote_char_limit=250,
                debater_a_config_id=fixture.config_id, debater_b_config_id=fixture.config_id,
                judge=judge, created_by=judge,
            )  # fmt: skip
            url = f"ws://127.0.0.1:{nginx_port}/ws/debates/{debate.pk}/"
            pages = [Page() for _ in fixture.cookies]

            async def watch_all(pages: list[Page] = pages, url: str = url) -> asyncio.Event:
                done = asyncio.Event()
                opened = [asyncio.Event() for _ in pages]
                for page, cookie, event in zip(pages, fixture.cookies, opened, strict=True):
                    asyncio.ensure_future(judge_watch(url, origin, cookie, page, done, event))
                # Every judge on the page before the prior (a slow machine: at most 120 s).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 120)
                return done

            started = time.monotonic()
            done = clients.submit(watch_all()).result(timeout=180)
            debate_prior_submit(debate_id=debate.pk, judge=judge, probability_a=50)
            if not tree_ids:
                tree_ids.append(tree_start(fixture))
            speeches: list[Any] = []

            def ended(debate_id: int = debate.pk) -> bool:
                nonlocal speeches
                speeches = list(Speech.objects.filter(debate_id=debate_id).order_by("side"))
                return len(speeches) == 2 and all(s.status in ("done", "failed") for s in speeches)

            while not ended() and time.monotonic() < drain_until[0]:
                time.sleep(0.5)
            if ended():
                # The finished cards reach every page in a moment: poll for them.
                with contextlib.suppress(RuntimeError):
                    wait_for("pages", lambda p=pages, s=speeches: all(
                        x.pk in page.finished for page in p for x in s
                    ), 30)  # fmt: skip
            clients.loop.call_soon_threadsafe(done.set)
            results.append(DebateResult(debate.pk, [s.pk for s in speeches], pages,
                                        time.monotonic() - started))  # fmt: skip
            say(f"debate {debate.pk}: {[s.status for s in speeches]} in "
                f"{time.monotonic() - started:.0f} s, {len(pages)} judges watching")  # fmt: skip
    finally:
        time.sleep(1)
        clients.close()


# --- faults -------------------------------------------------------------------------------
@dataclass
class Fault:
    name: str
    injected_at: float  # seconds since t0
    recovered_s: float | None
    note: str


def faults_inject(deployment: Deployment, fixture: Fixture, duration: float, t0: float,
                  faults: list[Fault]) -> None:  # fmt: skip
    """Each fault on its schedule; its recovery is watched in a thread of its own, so a slow
    recovery does not push the next fault back. Returns when every recovery is settled."""
    from django.db import close_old_connections, connection

    from debate.models import Speech
    from rewards.models import RewardModel, RewardVersion, Speed, Status, Trigger
    from rewards.services import reward_training_start

    recoveries: list[threading.Thread] = []

    def at(share: float) -> None:
        # On schedule, but never inside the previous fault's window.
        last = max((f.injected_at for f in faults), default=-window_s(duration))
        delay = max(t0 + share * duration, t0 + last + window_s(duration)) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        close_old_connections()

    def now() -> float:
        return time.monotonic() - t0

    def injected(name: str, note: str) -> Fault:
        fault = Fault(name, now(), None, note)
        faults.append(fault)
        say(f"fault: {name} ({note})")
        return fault

    def recover(fault: Fault, what: str, check: Any, timeout_s: float, first: Any = None,
                then: Any = None) -> None:  # fmt: skip
        def watch() -> None:
            if first is not None:
                first()
            with contextlib.suppress(RuntimeError):
                wait_for(what, check, timeout_s, 0.5)
                fault.recovered_s = now() - fault.injected_at
            if then is not None:
                fault.note += then()
            connection.close()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        recoveries.append(thread)

    # 1. A web replica, SIGKILLed; nginx routes around it; restarted WEB_DOWN_S later.
    at(FAULT_AT["web"])
    deployment.kill("web-1", hold_s=WEB_DOWN_S)
    fault = injected("SIGKILL a web replica", f"web-1, restarted after {WEB_DOWN_S:g} s")

    def down() -> None:
        time.sleep(WEB_DOWN_S)  # while nginx routes around it

    recover(fault, "web-1 back", lambda: answers(deployment.web_ports[0]), 180, first=down)

    # 2. The generation worker, SIGKILLed while a speech streams; restarted at once.
    at(FAULT_AT["generation"])
    streaming = Speech.objects.filter(status="streaming").exclude(text="")
    try:
        wait_for("a speech streaming", streaming.exists, 900)
        speech = streaming.first()
        assert speech is not None
        note = f"speech {speech.pk} at {len(speech.text)} characters"
    except RuntimeError:
        speech, note = None, "no speech was streaming within 900 s: killed anyway"
    deployment.kill("generation")  # the manager starts it again at once
    fault = injected("SIGKILL the generation worker mid-speech", note)
    fault.note += "; recovered = that speech done (beat's sweeper restarts it)"
    if speech is not None:
        done = Speech.objects.filter(pk=speech.pk, status="done")
        recover(fault, "the speech done", done.exists, 900)

    # 3. Redis restarted: broker, results and channel layer are gone for a moment.
    at(FAULT_AT["redis"])
    deployment.kill("redis", sig=signal.SIGTERM)  # it saves its append-only file and exits
    fault = injected("restart Redis", "SIGTERM, then started again on its port")
    fault.note += "; recovered = /healthz green through nginx (database, Redis, every queue)"
    recover(fault, "healthz green", lambda: healthy(deployment.nginx_port), 300)

    # 4. The training worker, SIGKILLed while a reward model trains; restarted at once.
    at(FAULT_AT["training"])
    reward_model = RewardModel.objects.get(pk=fixture.reward_model_id)
    version = reward_training_start(reward_model=reward_model, speed=Speed.FULL,
                                    trigger=Trigger.MANUAL)  # fmt: skip
    try:
        assert version is not None, "a run was already queued or running"
        wait_for("the run training", lambda: RewardVersion.objects.filter(
            pk=version.pk, status=Status.TRAINING).exists(), 300)  # fmt: skip
        time.sleep(2)  # into the run, past its first step
        note = f"version {version.number} training"
    except (RuntimeError, AssertionError) as error:
        note = f"not mid-run: {error}"
    deployment.kill("training")
    fault = injected("SIGKILL the training worker mid-run", note)
    fault.note += "; recovered = failed with its reason, and its retry finished"
    if version is not None:
        retried = RewardVersion.objects.filter(
            reward_model=reward_model, attempt__gt=version.attempt
        ).exclude(status__in=("queued", "training", "evaluating"))

        def outcome(version: Any = version) -> str:
            version.refresh_from_db()
            retry = RewardVersion.objects.filter(reward_model=reward_model,
                                                 attempt__gt=version.attempt).first()  # fmt: skip
            return (f"; the run: {version.status} ({version.reason or 'no reason'}); its retry: "
                    f"{retry.status if retry else 'none'}")  # fmt: skip

        recover(fault, "the retry finished", retried.exists, 900, then=outcome)
    for thread in recoveries:
        thread.join()


# --- the report ---------------------------------------------------------------------------
def window_s(duration: float) -> float:
    """A fault's window: the requests sent this long after its injection."""
    return min(30.0, 0.15 * duration)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def jobs_unfinished() -> dict[str, int]:
    """Job rows not in a final state, by kind."""
    from amplification.models import Node, Tree
    from annotations.models import ExportJob
    from debate.models import Speech
    from llm.models import ModelTrial, TrainingRun
    from rewards.models import RUNNING, RewardVersion

    return {
        "speeches": Speech.objects.filter(status__in=("queued", "streaming")).count(),
        "trees": Tree.objects.filter(status__in=("queued", "running")).count(),
        "tree nodes": Node.objects.filter(status="running").count(),
        "reward versions": RewardVersion.objects.filter(status__in=RUNNING).count(),
        "exports": ExportJob.objects.filter(status__in=("queued", "running")).count(),
        "model trials": ModelTrial.objects.filter(status__in=("queued", "running")).count(),
        "training runs": TrainingRun.objects.filter(status__in=("queued", "running")).count(),
    }


def report(args: argparse.Namespace, fixture: Fixture, baseline: Annotators, soak: Annotators,
           duration: float, faults: list[Fault], debates: list[DebateResult],
           tree_ids: list[int]) -> bool:  # fmt: skip
    from amplification.models import Tree
    from annotations.models import Label
    from bench.queues import check_rules
    from debate.models import Speech
    from debate.quotes import speech_html
    from rewards.models import RewardVersion

    ok = True
    print("\n=== soak report")
    print(f"run: {duration / 60:.1f} min, {args.annotators} annotators, {args.judges} judges, "
          f"{args.replicas} replicas behind nginx; load average at the end "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")  # fmt: skip

    # Labels: acknowledged against stored.
    stored = list(Label.objects.filter(queue_id=fixture.queue_id)
                  .values_list("client_request_id", flat=True))  # fmt: skip
    stored_ids = [str(x) for x in stored]
    acked = set(baseline.acked) | set(soak.acked)
    lost = acked - set(stored_ids)
    duplicated = len(stored_ids) - len(set(stored_ids))
    unacked = set(stored_ids) - acked
    print(f"\nlabels: {len(acked)} acknowledged, {len(stored_ids)} stored; lost {len(lost)}, "
          f"duplicated {duplicated}; {soak.replayed + baseline.replayed} retried submits "
          f"answered 200 (already stored); {len(unacked)} stored without an acknowledgement; "
          f"{len(soak.refused)} refused 409 (lease gone); "
          f"{len(soak.gave_up)} never answered")  # fmt: skip
    ok &= not lost and not duplicated and not soak.gave_up
    problems = check_rules(fixture.queue_id, len(stored_ids))
    print(
        f"claim rules at the end (k = {K}, nobody twice on an item, label_count = labels): "
        + ("hold" if not problems else "BROKEN: " + "; ".join(problems))
    )
    ok &= not problems

    # Transcripts.
    compared = equal_stream = equal_page = streamed_pages = 0
    mismatches: list[str] = []
    reconnects = 0
    for result in debates:
        speeches = {s.pk: s for s in Speech.objects.filter(pk__in=result.speech_ids)}
        for page in result.pages:
            reconnects += max(0, page.connects - 1)
            for speech_id, speech in speeches.items():
                if speech.status != "done":
                    continue
                compared += 1
                shown = page.finished.get(speech_id)
                if shown == str(speech_html(speech.text, speech.quotes,
                                            truncated=speech.truncated)):  # fmt: skip
                    equal_page += 1
                elif len(mismatches) < 5:
                    mismatches.append(f"speech {speech_id}: page shows {shown!r:.80}")
                if speech_id in page.at_finish:
                    streamed_pages += 1
                    if page.at_finish[speech_id] == speech.text:
                        equal_stream += 1
                    elif len(mismatches) < 5:
                        mismatches.append(f"speech {speech_id}: streamed "
                                          f"{page.at_finish[speech_id]!r:.80} vs stored "
                                          f"{speech.text!r:.80}")  # fmt: skip
    print(f"\ntranscripts: {len(debates)} debates; {compared} (judge, finished speech) pairs: the "
          f"page shows the stored speech in {equal_page}; of {streamed_pages} pairs watched "
          f"while streaming, the streamed text equals the stored text in {equal_stream}; "
          f"{reconnects} reconnects")  # fmt: skip
    for line in mismatches:
        print(f"  MISMATCH {line}")
    ok &= equal_page == compared and equal_stream == streamed_pages and compared > 0

    # Jobs.
    left = jobs_unfinished()
    failed = list(Speech.objects.filter(status="failed").values_list("pk", "error"))
    versions = list(RewardVersion.objects.filter(reward_model_id=fixture.reward_model_id)
                    .order_by("number").values_list("number", "status", "reason"))  # fmt: skip
    print(
        f"\njobs left unfinished: {sum(left.values())} "
        f"({', '.join(f'{k} {v}' for k, v in left.items())})"
    )
    for tree in Tree.objects.filter(pk__in=tree_ids):
        print(f"  tree expansion {tree.pk}: {tree.status}")
    if not tree_ids:
        print("  the tree expansion never started (no debate began)")
    for number, status, reason in versions:
        print(f"  reward version {number}: {status}" + (f" ({reason})" if reason else ""))
    for speech_id, error in failed:
        print(f"  speech {speech_id} failed: {error or 'NO REASON'}")
    ok &= not sum(left.values()) and all(error for _, error in failed) and bool(tree_ids)
    ok &= all(status != "failed" or reason for _, status, reason in versions)

    # Latency outside and inside each fault window.
    window = window_s(args.minutes * 60)  # as the injector spaced them
    print(
        f"\nlatency of successful requests through nginx (a fault window: the {window:.0f} s "
        "after an injection); errors are 5xx/429 answers and dropped connections:"
    )
    rows: list[tuple[str, list[Sample], int]] = []

    def inside(at: float, fault: Fault) -> bool:
        return fault.injected_at <= at < fault.injected_at + window

    outside = [s for s in soak.samples if not any(inside(s.at, f) for f in faults)]
    rows.append(("baseline: one replica, no proxy, no fault", baseline.samples,
                 len(baseline.errors)))  # fmt: skip
    rows.append(("soak, outside fault windows", outside,
                 sum(not any(inside(at, f) for f in faults) for at, _ in soak.errors)))  # fmt: skip
    for fault in faults:
        rows.append((f"inside: {fault.name}", [s for s in soak.samples if inside(s.at, fault)],
                     sum(inside(at, fault) for at, _ in soak.errors)))  # fmt: skip
    print(
        f"  {'':52} {'n':>6} {'next p50':>9} {'next p95':>9} {'submit p50':>10} "
        f"{'submit p95':>10} {'errors':>6}"
    )
    for name, samples, errors in rows:
        nexts = [s.seconds for s in samples if s.kind == "next"]
        submits = [s.seconds for s in samples if s.kind == "submit"]
        print(
            f"  {name:52} {len(samples):>6} {ms(pct(nexts, 0.5)):>9} {ms(pct(nexts, 0.95)):>9} "
            f"{ms(pct(submits, 0.5)):>10} {ms(pct(submits, 0.95)):>10} {errors:>6}"
        )
    seconds_out = duration - len(faults) * window
    rate_out = sum(s.kind == "submit" for s in outside) / max(1.0, seconds_out)
    rate_base = sum(s.kind == "submit" for s in baseline.samples) / args.baseline_s
    print(
        f"  labels/s outside fault windows {rate_out:.1f}, baseline {rate_base:.1f}: "
        f"{rate_out / rate_base if rate_base else 0:.2f}x"
    )
    if soak.errors:
        kinds: dict[str, int] = {}
        for _, what in soak.errors:
            kinds[what] = kinds.get(what, 0) + 1
        print(f"  soak errors by kind: {kinds}")

    print("\nfaults (seconds since the soak started):")
    for fault in faults:
        recovered = "NOT RECOVERED" if fault.recovered_s is None else f"{fault.recovered_s:.1f} s"
        print(
            f"  {fault.injected_at:6.1f} s  {fault.name}: recovered in {recovered} ({fault.note})"
        )
        ok &= fault.recovered_s is not None
    ok &= len(faults) == len(FAULT_AT)
    print(f"\nverdict: {'nothing lost, duplicated or stuck' if ok else 'PROBLEMS (see above)'}")
    return ok


# --- the run ------------------------------------------------------------------------------
def scratch_database(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        sys.exit("bench/soak.py needs PostgreSQL: set DATABASE_URL=postgres://…")
    name = f"{parts.path.lstrip('/') or 'arbiter'}_soak"
    return urlunsplit(parts._replace(path=f"/{name}")), name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--judges", type=int, default=50, help="websockets per live debate")
    parser.add_argument("--replicas", type=int, default=2, help="uvicorn replicas behind nginx")
    parser.add_argument("--tokens", type=int, default=48, help="max new tokens of a speech")
    parser.add_argument("--reward-pairs", type=int, default=200, help="the reward model's data")
    parser.add_argument("--baseline-s", type=float, default=15.0)
    parser.add_argument("--drain-minutes", type=float, default=8.0,
                        help="longest wait after the run for jobs to finish")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    if args.replicas < 2:
        parser.error("--replicas: at least 2 (one is killed)")
    database_url, database = scratch_database(os.environ.get("DATABASE_URL", ""))

    shutil.rmtree(SOAK_DIR, ignore_errors=True)
    (SOAK_DIR / "log").mkdir(parents=True)
    redis_port, nginx_port = free_port(), free_port()
    web_ports = [free_port() for _ in range(args.replicas)]
    os.environ.update(
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        ARBITER_VAR_DIR=str(SOAK_DIR / "var"),
        LLM_MODELS_DIR=os.environ.get("LLM_MODELS_DIR", str(ROOT / "var" / "models")),
        DJANGO_SETTINGS_MODULE="config.settings",
        HF_HUB_OFFLINE="1",
        DEBUG="0",
        LOG_LEVEL="WARNING",
        WORKER_CONCURRENCY="1",
    )
    sys.path.insert(0, str(ROOT))
    import psycopg

    from config.run import Supervisor

    admin_url = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
    admin = psycopg.connect(admin_url, autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{database}"')
    deployment = Deployment(Supervisor(log_dir=SOAK_DIR / "log"), redis_port, nginx_port,
                            web_ports, SOAK_DIR)  # fmt: skip
    try:
        say(f"database {database}; Redis :{redis_port}; nginx :{nginx_port}; replicas {web_ports}")
        deployment.start_redis()
        wait_for("redis-server", deployment.redis_up, 20)
        for command in (["migrate", "--verbosity", "0"],
                        ["collectstatic", "--noinput", "--verbosity", "0"]):  # fmt: skip
            subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, check=True)
        import django

        django.setup()
        from django.conf import settings

        fixture = fixture_create(args)
        from django.db import connections

        connections.close_all()
        for n in range(args.replicas):
            deployment.start_web(n)
        for queue in ("generation", "training", "default"):
            deployment.start_worker(queue)
        from config.run import beat_command

        deployment.start("beat", beat_command())
        nginx_start(deployment, Path(settings.STATIC_ROOT))
        wait_for("healthz green through nginx", lambda: healthy(nginx_port), 300, 1)
        say("deployment up: /healthz green through nginx")

        say(f"baseline: {args.annotators} annotators straight to one replica for "
            f"{args.baseline_s:g} s")  # fmt: skip
        baseline = Annotators(web_ports[1], fixture.queue_id, fixture.tokens)
        baseline.run(args.baseline_s)

        duration = args.minutes * 60
        say(
            f"soak: {duration / 60:g} min through nginx, faults at "
            + ", ".join(f"{name} {share:.0%}" for name, share in FAULT_AT.items())
        )
        soak = Annotators(nginx_port, fixture.queue_id, fixture.tokens)
        debate_stop = threading.Event()
        debates: list[DebateResult] = []
        tree_ids: list[int] = []
        drain_until = [float("inf")]
        annotator_threads = soak.run()
        cpu = CpuMeter(deployment)
        t0 = soak.t0
        driver = threading.Thread(target=debates_drive, args=(
            nginx_port, fixture, debate_stop, t0, debates, drain_until, tree_ids),
            daemon=True)  # fmt: skip
        driver.start()
        faults: list[Fault] = []
        injector = threading.Thread(
            target=faults_inject, args=(deployment, fixture, duration, t0, faults), daemon=True
        )
        injector.start()
        deployment.wait("the run's length", lambda: time.monotonic() > t0 + duration, duration)
        if injector.is_alive():
            # A fault waits for its moment (a speech streaming, a model training): on a slow
            # machine the last ones come late, and the load goes on until they are done.
            say("time is up with faults still pending: the load goes on until they are done")
            deployment.wait("faults", lambda: not injector.is_alive(), args.drain_minutes * 60)
        duration = time.monotonic() - t0
        wall, cpu_seconds = cpu.report()
        soak.stop.set()
        debate_stop.set()
        say(f"soak over after {duration:.0f} s: draining (jobs to finish)")
        deadline = time.monotonic() + args.drain_minutes * 60
        drain_until[0] = deadline
        threads = [*annotator_threads, driver]
        deployment.wait("annotators and debates", lambda: not any(t.is_alive() for t in threads),
                        max(1.0, deadline - time.monotonic()))  # fmt: skip
        from django.db import close_old_connections

        close_old_connections()
        deployment.wait("jobs finished", lambda: not sum(jobs_unfinished().values()),
                        max(1.0, deadline - time.monotonic()))  # fmt: skip
        ok = report(args, fixture, baseline, soak, duration, faults, debates, tree_ids)
        cores = os.cpu_count() or 1
        print(f"\nwhere the cores went during the soak ({wall:.0f} s × {cores} cores = "
              f"{wall * cores:.0f} CPU seconds available):")  # fmt: skip
        for owner, used in sorted(cpu_seconds.items(), key=lambda item: -item[1]):
            print(f"  {owner:<36} {used:8.0f} s  {used / (wall * cores):6.1%}")
        print("\nprocesses that exited by themselves (restarted, as Restart=always does):")
        for when, name, log in deployment.crashes:
            print(f"  {when - t0:6.1f} s  {name}; its log ended:")
            print("    " + log.replace("\n", "\n    "))
        if not deployment.crashes:
            print("  none")
    finally:
        deployment.supervisor.stop()
        from django.db import connections

        connections.close_all()
        if not args.keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
        say(f"logs: {SOAK_DIR / 'log'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
