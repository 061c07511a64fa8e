"""`make run`: everything Arbiter needs, on one machine, from one command.

Checks the configured database and Redis (or starts the embedded Redis), migrates, seeds the
demo, starts the ASGI server, a Celery worker and beat, waits for /healthz, prints the URL and
the logins, and on Ctrl-C stops every process it started.

A deployment runs the same processes one at a time (deploy/: systemd units, compose):
    python -m config.run web [--host H] [--port P]     one ASGI replica
    python -m config.run worker QUEUES                 a Celery worker for QUEUES (comma-separated)
    python -m config.run beat                          the one beat
Each replaces itself with the command `make run` starts (web_command, worker_command,
beat_command), so a process manager signals uvicorn or Celery directly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from config.embedded import die_with_parent
from config.env import env_int, env_str

# Generation has a worker of its own, one process: torch already uses every core for one
# generation, so two at once would only compete for them (README, "Workers and cores").
GENERATION_QUEUES = "generation"
WORKER_QUEUES = "training,default"
HEALTH_WAIT_S = 180
REPLICA_KEEPALIVE_S = 75
STOP_GRACE_S = 5.0


def web_command(*, host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "config.asgi:application",
        "--host", host, "--port", str(port), "--lifespan", "off", "--no-access-log",
        # Longer than nginx's upstream keepalive_timeout (60 s, deploy/nginx): the proxy closes
        # an idle connection first. uvicorn's default (5 s) raced it: resets, then 502s.
        "--timeout-keep-alive", str(REPLICA_KEEPALIVE_S),
    ]  # fmt: skip


def worker_concurrency(queues: str) -> int:
    """Processes of a worker for `queues`: one for `generation` (see GENERATION_QUEUES), else
    WORKER_CONCURRENCY."""
    if queues == GENERATION_QUEUES:
        return 1
    return env_int("WORKER_CONCURRENCY", 2, minimum=1)


def worker_command(*, queues: str, hostname: str) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "config", "worker", "--queues", queues,
        "--concurrency", str(worker_concurrency(queues)), "--hostname", hostname,
        "--loglevel", "INFO",
    ]  # fmt: skip


def beat_command() -> list[str]:
    from django.conf import settings

    return [
        sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
        "--schedule", str(settings.CELERY_BEAT_SCHEDULE_FILENAME),
    ]  # fmt: skip


def fail(message: str) -> None:
    print(f"arbiter: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def say(message: str) -> None:
    print(f"arbiter: {message}", flush=True)


@dataclass
class Supervisor:
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        # A session of its own: Ctrl-C reaches only us, and we stop the children in order.
        self.processes[name] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent,
        )  # fmt: skip

    def adopt(self, name: str, process: subprocess.Popen[bytes]) -> None:
        self.processes[name] = process

    def exited(self) -> str | None:
        return next((name for name, p in self.processes.items() if p.poll() is not None), None)

    def stop(self) -> None:
        # Reverse start order: web and workers go before the Redis they talk to.
        for name in reversed(list(self.processes)):
            self._signal(name, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            # Kill the whole group: Celery's pool children must not outlive their parent.
            self._signal(name, signal.SIGKILL)
            process.wait()

    def _signal(self, name: str, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.processes[name].pid, sig)

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _load_settings() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured

    try:
        import django

        django.setup()
    except ImproperlyConfigured as error:
        fail(f"bad configuration: {error}")


def _check_database() -> None:
    import psycopg
    from django.db import connection
    from django.db.utils import OperationalError

    try:
        if connection.vendor == "postgresql":
            # Straight to the server, not through the pool: the pool would retry for its
            # whole timeout and then report only that it timed out, not why.
            psycopg.connect(**connection.get_connection_params()).close()
        else:
            connection.ensure_connection()
    except (OperationalError, psycopg.OperationalError) as error:
        where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "the SQLite file under var/"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "no answer"
        fail(f"cannot reach the database named by {where}: {reason}")
    finally:
        connection.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _ready(url: str) -> bool:
    """Green: the parts pass /healthz's own check run here, then the web answers /healthz 200.

    The check runs here first so that the poll never asks the web while a worker is still
    starting: the web logs each 503 it sends as an ERROR, and those must keep meaning that
    something is down (a monitor polling /healthz), not that we are starting up."""
    from core.health import health_check

    if not asyncio.run(health_check()).ok:
        return False
    return _healthy(f"{url}/healthz")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


def _logins(var_dir: Path) -> str:
    path = var_dir / "demo-logins.txt"
    return path.read_text() if path.exists() else "(demo logins were not written by this checkout)"


def main() -> None:
    # Installed explicitly: a shell may start us with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    _load_settings()
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import call_command

    from config.embedded import embedded_redis_start, redis_answers

    try:
        host = env_str("HOST", "127.0.0.1")
        port = env_int("PORT", 8000, minimum=1)
        worker_concurrency(WORKER_QUEUES)  # a bad WORKER_CONCURRENCY stops us before anything runs
    except ImproperlyConfigured as error:
        fail(f"bad configuration: {error}")
    var_dir: Path = settings.VAR_DIR
    log_dir = var_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(log_dir=log_dir)

    _check_database()
    try:
        if settings.REDIS_EMBEDDED:
            socket_path = Path(settings.REDIS_URL.removeprefix("unix://"))
            if redis_answers(settings.REDIS_URL):
                fail(f"an embedded Redis already answers at {socket_path}: is Arbiter running?")
            say("starting the embedded Redis")
            redis_process = embedded_redis_start(
                socket_path=socket_path, log_path=log_dir / "redis.log"
            )
            supervisor.adopt("redis", redis_process)
        elif not redis_answers(settings.REDIS_URL, timeout_s=3):
            fail(f"cannot reach Redis at REDIS_URL={_redacted(settings.REDIS_URL)}")

        say("migrating the database")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_demo", verbosity=0)

        supervisor.start("web", web_command(host=host, port=port))
        supervisor.start("generation", worker_command(
            queues=GENERATION_QUEUES, hostname=f"arbiter-generation-{port}@%h"
        ))  # fmt: skip
        supervisor.start(
            "worker", worker_command(queues=WORKER_QUEUES, hostname=f"arbiter-{port}@%h")
        )
        supervisor.start("beat", beat_command())

        url = f"http://{host}:{port}"
        say(f"starting web, workers and beat (logs in {log_dir})")
        deadline = time.monotonic() + HEALTH_WAIT_S
        while not _ready(url):
            dead = supervisor.exited()
            if dead:
                fail(f"{dead} exited during start-up; last lines of its log:\n"
                     f"{supervisor.tail(dead)}")  # fmt: skip
            if time.monotonic() > deadline:
                fail(f"{url}/healthz was not green after {HEALTH_WAIT_S} s; logs in {log_dir}")
            time.sleep(0.5)

        say(f"ready at {url}/  (Ctrl-C stops everything)")
        print(_logins(var_dir), flush=True)
        while True:
            dead = supervisor.exited()
            if dead:
                fail(
                    f"{dead} stopped unexpectedly; last lines of its log:\n{supervisor.tail(dead)}"
                )
            time.sleep(1)
    except KeyboardInterrupt:
        say("stopping")
    finally:
        supervisor.stop()


def process_parser() -> argparse.ArgumentParser:
    """`python -m config.run web|worker QUEUES|beat`: the processes deploy/ runs."""
    parser = argparse.ArgumentParser(prog="python -m config.run", description=__doc__)
    which = parser.add_subparsers(dest="process", required=True)
    web = which.add_parser("web", help="one ASGI replica (HTTP and websockets)")
    web.add_argument("--host", default=None, help="default: HOST, else 127.0.0.1")
    web.add_argument("--port", type=int, default=None, help="default: PORT, else 8000")
    worker = which.add_parser("worker", help="a Celery worker")
    worker.add_argument("queues", help="comma-separated: generation, training, default")
    worker.add_argument("--hostname", default=None, help="default: arbiter-QUEUES@%%h")
    which.add_parser("beat", help="the one Celery beat of a deployment")
    return parser


def process_main(argv: list[str]) -> None:
    """One process of a deployment, by name: replaces this one with its command."""
    args = process_parser().parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured

    try:
        if args.process == "web":
            host = args.host or env_str("HOST", "127.0.0.1")
            port = args.port or env_int("PORT", 8000, minimum=1)
            command = web_command(host=host, port=port)
        elif args.process == "worker":
            from django.conf import settings

            routes = settings.CELERY_TASK_ROUTES.values()
            known = {route["queue"] for route in routes} | {settings.CELERY_TASK_DEFAULT_QUEUE}
            unknown = sorted(set(args.queues.split(",")) - known)
            if unknown:
                fail(f"no task goes to the queue {', '.join(unknown)}; "
                     f"the queues are {', '.join(sorted(known))}")  # fmt: skip
            hostname = args.hostname or f"arbiter-{args.queues.replace(',', '-')}@%h"
            command = worker_command(queues=args.queues, hostname=hostname)
        else:
            command = beat_command()
    except ImproperlyConfigured as error:
        fail(f"bad configuration: {error}")
    os.execv(command[0], command)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        process_main(sys.argv[1:])
    else:
        main()
