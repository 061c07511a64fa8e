"""Webhook benchmark: how long a label's event takes to reach a receiver while 20 annotators
label, and what webhooks cost the labelling itself.

Run: DATABASE_URL=postgres://… REDIS_URL=redis://… .venv/bin/python bench/webhooks.py [--seconds 20]

In a scratch database beside DATABASE_URL's (bench/queues.py's setup: a queue, 20 annotators
with tokens), with uvicorn serving config.asgi and a real Celery worker on the `default` queue,
measured in the same run:
  (0) baseline: 20 annotators labelling in a closed loop through the API (bench/queues.py's
      driver), no webhook endpoint registered;
  (1) the same with one endpoint subscribed to `label.created`: a local HTTP receiver that
      records when each label's event arrives.
It prints labels/s and p95 request latency of both phases (ratio against the baseline), the
event latency (label acknowledged to the client → its event at the receiver) at p50/p95/max
(target p95 ≤ 2 s), how many requests carried the labels (the batching), and whether every
acknowledged label's event arrived.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.queues import (  # noqa: E402
    ANNOTATORS,
    Client,
    bench_database_url,
    ms,
    percentile,
    setup,
)


class Receiver:
    """A local HTTP endpoint that notes when each label id first arrives."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.requests = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.monotonic()
                with outer.lock:
                    outer.requests += 1
                    for event in json.loads(body)["data"]:
                        outer.arrived.setdefault(event["id"], now)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def drive(port: int, tokens: list[str], queue_id: int, seconds: float) -> tuple[
    dict[int, float], list[float], float
]:  # fmt: skip
    """20 annotators in a closed loop; returns {label id: acknowledged at}, request latencies
    and the elapsed seconds."""
    stop = time.monotonic() + seconds
    acknowledged: dict[int, float] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    go = threading.Barrier(ANNOTATORS + 1)
    errors: list[BaseException] = []

    def annotate(n: int) -> None:
        import uuid

        client = Client(port, tokens[n])
        mine: list[float] = []
        done: dict[int, float] = {}
        try:
            go.wait()
            while time.monotonic() < stop:
                status, lease, next_s = client.call("POST", f"/api/queues/{queue_id}/next")
                if status == 204:
                    break
                assert status == 200 and isinstance(lease, dict), (status, lease)
                body = {"assignment_id": lease["assignment_id"], "value": {"choice": "a"},
                        "time_spent_ms": 1000, "client_request_id": str(uuid.uuid4())}  # fmt: skip
                status, reply, submit_s = client.call(
                    "POST", f"/api/queues/{queue_id}/labels", body
                )
                assert status == 201 and isinstance(reply, dict), (status, reply)
                done[reply["label_id"]] = time.monotonic()
                mine += [next_s, submit_s]
        except BaseException as error:  # reported below
            errors.append(error)
        with lock:
            latencies.extend(mine)
            acknowledged.update(done)

    threads = [threading.Thread(target=annotate, args=(n,)) for n in range(ANNOTATORS)]
    for thread in threads:
        thread.start()
    go.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return acknowledged, latencies, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "")
    if not os.environ.get("REDIS_URL"):
        sys.exit("bench/webhooks.py needs a Redis server both processes share: set REDIS_URL")
    url, name = bench_database_url(base)
    name = name.replace("_bench_queues", "_bench_webhooks")
    url = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("REDIS_KEY_PREFIX", f"bench-webhooks-{os.getpid()}:")
    import psycopg

    from bench.serving import asgi_serve, process_stop

    admin_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    admin = psycopg.connect(admin_url, autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    server = worker = None
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, check=True
        )
        queue_id, tokens, _ = setup(args.items, 0.0)
        from django.contrib.auth.models import User
        from django.db import connections

        from core.webhooks import webhook_endpoint_create

        env = dict(os.environ, LOG_LEVEL="WARNING")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
             "--queues", "default", "--loglevel", "WARNING"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        server, port = asgi_serve(env=env)
        connections.close_all()
        for token in tokens[:2]:  # warm-up: connections, caches
            client = Client(port, token)
            client.call("GET", "/api/queues/")

        rows: list[tuple[str, str, str]] = []
        _, base_latencies, base_elapsed = drive(port, tokens, queue_id, args.seconds)
        base_rate = len(base_latencies) / 2 / base_elapsed
        base_p95 = percentile(base_latencies, 0.95)
        rows.append(("baseline (no endpoint): labels/s", f"{base_rate:.0f}", "1.00x"))
        rows.append(("baseline: p95 request", ms(base_p95), "1.00x"))

        receiver = Receiver()
        owner = User.objects.create_user(username="bench-researcher")
        webhook_endpoint_create(
            owner=owner, name="bench", url=receiver.url, events=["label.created"], own_hosts=[]
        )
        connections.close_all()
        acknowledged, latencies, elapsed = drive(port, tokens, queue_id, args.seconds)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(acknowledged) <= set(receiver.arrived):
            time.sleep(0.1)
        rate = len(latencies) / 2 / elapsed
        p95 = percentile(latencies, 0.95)
        rows.append(("with webhooks: labels/s", f"{rate:.0f}", f"{rate / base_rate:.2f}x baseline"))
        rows.append(("with webhooks: p95 request", ms(p95), f"{p95 / base_p95:.2f}x baseline"))
        delays = [receiver.arrived[i] - t for i, t in acknowledged.items() if i in receiver.arrived]
        missing = len(set(acknowledged) - set(receiver.arrived))
        if delays:
            for label, share in (("p50", 0.5), ("p95", 0.95)):
                value = percentile(delays, share)
                target = " (target <= 2 s)" if label == "p95" else ""
                rows.append((f"label → receiver {label}", f"{value:.2f} s", target.strip()))
            rows.append(("label → receiver max", f"{max(delays):.2f} s", ""))
        rows.append(
            ("requests to the receiver", str(receiver.requests),
             f"for {len(acknowledged)} labels: {len(acknowledged) / max(receiver.requests, 1):.0f}"
             " labels per request")
        )  # fmt: skip
        rows.append(
            ("labels acknowledged whose event never arrived", str(missing),
             "none lost" if not missing else "LOST")
        )  # fmt: skip
        width = max(len(row[0]) for row in rows)
        print(f"\nwebhooks bench: {ANNOTATORS} annotators, {args.seconds:.0f} s per phase,"
              f" {os.cpu_count()} cores")  # fmt: skip
        for row_label, row_value, row_note in rows:
            print(f"  {row_label:<{width}}  {row_value:>10}  {row_note}")
    finally:
        for process in (server, worker):
            if process is not None:
                process_stop(process)
        if not args.keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
