"""Queue benchmark: next-item and submit over HTTP on the ASGI server, alone and under load.

Run: DATABASE_URL=postgres://… .venv/bin/python bench/queues.py [--quick] [--seconds 20]

The targets must hold for every queue a researcher meets, so one run sweeps queue sizes
(--items, default 2,000 and 100,000) and states (--done, default fresh and half done): each
case in a scratch database `<name>_bench_queues` beside DATABASE_URL's (created, migrated,
dropped) with its own uvicorn serving config.asgi on a free loopback port. A half-done queue's
first half already has k labels each from earlier annotators, as a queue in use would. A fresh
queue starts the way an import leaves it, with no time for autovacuum to look at it first.
--quick sweeps 2,000 and 20,000 items for a few seconds each (a check, not figures).
For each case, measured in the same run:
  (0) baseline: an authenticated GET /api/queues/ (the API's cheapest call: auth + one query);
  (0b) the claim's pick alone inside PostgreSQL (its generic plan: index walk or sort);
  (1) one annotator alone: POST …/next and POST …/labels medians (targets 10 ms and 15 ms);
  (2) 20 annotators in a closed loop with no think time: labels/s (target >= 150) and p95
      latency (target <= 100 ms);
then it checks the rules on the rows: no item above k labels, nobody twice on an item, and
as many labels as submits the clients were told succeeded.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
ANNOTATORS = 20
K = 3


def bench_database_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        sys.exit("bench/queues.py needs PostgreSQL: set DATABASE_URL=postgres://…")
    name = parts.path.lstrip("/") + "_bench_queues"
    return urlunsplit(parts._replace(path=f"/{name}")), name


class Client:
    """One keep-alive HTTP connection speaking JSON with a bearer token."""

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: object = None) -> tuple[int, object, float]:
        data = json.dumps(body) if body is not None else None
        start = time.perf_counter()
        self.connection.request(method, path, body=data, headers=self.headers)
        response = self.connection.getresponse()
        raw = response.read()
        elapsed = time.perf_counter() - start
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw[:2000].decode(errors="replace")  # an error page: shown by the assert
        return response.status, data, elapsed


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU time so far of the server's processes, PostgreSQL's, and this client (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = {"server": 0.0, "postgres": 0.0, "client": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        seconds = (int(stat[11]) + int(stat[12])) / tick
        if int(pid) == server_pid or int(stat[1]) == server_pid:  # uvicorn and its workers
            totals["server"] += seconds
        elif name.startswith("postgres"):
            totals["postgres"] += seconds
        elif int(pid) == os.getpid():
            totals["client"] += seconds
    return totals


def label_once(client: Client, queue_id: int) -> tuple[float, float] | None:
    """Claim and label one item; returns (next seconds, submit seconds), None when done."""
    status, lease, next_s = client.call("POST", f"/api/queues/{queue_id}/next")
    if status == 204:
        return None
    assert status == 200, (status, lease)
    assert isinstance(lease, dict)
    body = {
        "assignment_id": lease["assignment_id"],
        "value": {"choice": "a"},
        "time_spent_ms": 1000,
        "client_request_id": str(uuid.uuid4()),
    }
    status, reply, submit_s = client.call("POST", f"/api/queues/{queue_id}/labels", body)
    assert status == 201, (status, reply)
    return next_s, submit_s


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def setup(items: int, done: float) -> tuple[int, list[str], str]:
    """Users, tokens and the queue, through the project's own services."""
    import django

    django.setup()
    from django.contrib.auth.models import Group, User

    from annotations.kinds import PairwisePayload
    from annotations.models import Queue
    from annotations.services import (
        NewItem,
        api_token_create,
        queue_items_create,
        queue_members_set,
    )
    from core.roles import Role

    group = Group.objects.get(name=Role.ANNOTATOR)
    people = []
    for n in range(ANNOTATORS + 1):
        user = User.objects.create_user(username=f"bench-{n}", password=None)
        user.groups.add(group)
        people.append(user)
    queue = Queue.objects.create(name="bench", kind="pairwise", labels_per_item=K)
    queue_members_set(queue=queue, users=people)
    text = "An answer of a realistic length, written by a model for a person to judge. " * 4
    start = time.perf_counter()
    for offset in range(0, items, 10_000):
        batch = [
            NewItem(
                payload=PairwisePayload(
                    prompt=f"Question {n}?", response_a=text + "A", response_b=text + "B"
                ),
                external_id=str(n),
            )
            for n in range(offset, min(items, offset + 10_000))
        ]
        queue_items_create(queue=queue, items=batch)
    print(f"created {items:,} items in {time.perf_counter() - start:.1f} s", flush=True)
    if done:
        label_earlier(queue, int(items * done))
    tokens = [api_token_create(user=user, name="bench") for user in people]
    researcher_token = tokens.pop()
    return queue.pk, tokens, researcher_token


def label_earlier(queue: Any, count: int) -> None:
    """The queue's first `count` items labelled k times by earlier annotators, as in a queue
    people have worked through for a while: a claim must walk past all that history fast."""
    from django.contrib.auth.models import User
    from django.db import connection

    earlier = [User.objects.create_user(username=f"earlier-{n}").pk for n in range(K)]
    start = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO annotations_label (queue_id, item_id, annotator_id, value,"
            " time_spent_ms, client_request_id, is_gold, created_at)"
            " SELECT i.queue_id, i.id, u, %s, 1000, gen_random_uuid(),"
            " false, now() FROM annotations_item i CROSS JOIN unnest(%s::bigint[]) u"
            " WHERE i.queue_id = %s AND i.id <= (SELECT MIN(id) FROM annotations_item"
            " WHERE queue_id = %s) + %s - 1",
            [json.dumps({"choice": "a"}), earlier, queue.pk, queue.pk, count],
        )
        cur.execute(
            "UPDATE annotations_item SET label_count = %s, complete = true"
            " WHERE id IN (SELECT item_id FROM annotations_label WHERE queue_id = %s)",
            [K, queue.pk],
        )
        # What autovacuum would have done by now. Not the still empty leases table: its
        # statistics would say "no rows" until autovacuum looked again, a minute in.
        cur.execute("VACUUM ANALYZE annotations_item, annotations_label")
    print(f"labelled the first {count:,} items {K} times in {time.perf_counter() - start:.1f} s")


def claim_statement(queue_id: int) -> tuple[float, str]:
    """The claim's pick alone, as the server runs it (a prepared statement, generic plan):
    PostgreSQL's median execution time over 20 runs, and the plan's shape. Measured inside
    the database, so the machine's load on the web side does not blur it."""
    from django.contrib.auth.models import User
    from django.db import connection

    from annotations import hot_sql
    from annotations.models import Priority

    pick = hot_sql.pick_prepared_form(Priority.FIFO)
    annotator = User.objects.get(username="bench-1").pk
    times = []
    with connection.cursor() as cur:
        cur.execute("SET plan_cache_mode = force_generic_plan")
        cur.execute(f"PREPARE bench_pick (bigint, integer, timestamptz, integer) AS {pick}")
        for _ in range(20):
            cur.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE bench_pick (%s, %s, now(), %s)",
                [queue_id, annotator, K],
            )
            report = cur.fetchone()[0]
            report = json.loads(report) if isinstance(report, str) else report
            times.append(report[0]["Execution Time"] / 1000)
        cur.execute("EXPLAIN EXECUTE bench_pick (%s, %s, now(), %s)", [queue_id, annotator, K])
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("DEALLOCATE bench_pick")
    shape = "sorts the queue" if "Sort" in plan else "walks the order index"
    return statistics.median(times), shape


def check_rules(queue_id: int, told: int) -> list[str]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) n FROM annotations_label"
            " WHERE queue_id = %s GROUP BY item_id) t",
            [queue_id],
        )
        most = cur.fetchone()[0]
        cur.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM annotations_label WHERE queue_id = %s"
            " GROUP BY item_id, annotator_id HAVING COUNT(*) > 1) t",
            [queue_id],
        )
        twice = cur.fetchone()[0]
        cur.execute(
            "SELECT COUNT(*) FROM annotations_label l JOIN auth_user u ON u.id = l.annotator_id"
            " WHERE l.queue_id = %s AND u.username LIKE 'bench-%%'",
            [queue_id],
        )
        stored = cur.fetchone()[0]
        cur.execute(
            "SELECT COUNT(*) FROM annotations_item i WHERE queue_id = %s AND label_count <>"
            " (SELECT COUNT(*) FROM annotations_label l WHERE l.item_id = i.id)",
            [queue_id],
        )
        drift = cur.fetchone()[0]
    problems = []
    if most > K:
        problems.append(f"an item has {most} labels (k = {K})")
    if twice:
        problems.append(f"{twice} (item, annotator) pairs labelled twice")
    if stored != told:
        problems.append(f"{stored} labels stored, {told} submits acknowledged")
    if drift:
        problems.append(f"{drift} items whose label_count disagrees with their labels")
    return problems


Row = tuple[str, str, str]


def run_case(args: argparse.Namespace, items: int, done: float) -> tuple[list[Row], list[str]]:
    """One queue size and state in a scratch database of its own; its rows and broken rules."""
    url, name = bench_database_url(os.environ["BENCH_BASE_DATABASE_URL"])
    os.environ["DATABASE_URL"] = url
    sys.path.insert(0, str(ROOT))
    import psycopg
    from django.db import connections

    from bench.serving import asgi_serve, process_stop

    admin_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    admin = psycopg.connect(admin_url, autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    server = None
    rows: list[Row] = []
    problems: list[str] = []
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, check=True
        )
        queue_id, tokens, researcher_token = setup(items, done)
        pick_s, pick_shape = claim_statement(queue_id)
        connections.close_all()

        env = dict(os.environ, DB_CONN_MAX_AGE=str(args.conn_max_age), LOG_LEVEL="WARNING")
        server, port = asgi_serve(extra_args=("--workers", str(args.web_workers)), env=env)

        # (0) baseline, (1) one annotator alone
        reader = Client(port, researcher_token)
        for _ in range(20):
            reader.call("GET", "/api/queues/")
        baseline = statistics.median(reader.call("GET", "/api/queues/")[2] for _ in range(200))
        alone = Client(port, tokens[0])
        for _ in range(20):  # warm-up: connections, caches
            label_once(alone, queue_id)
        timings = [label_once(alone, queue_id) for _ in range(args.alone)]
        next_median = statistics.median(t[0] for t in timings if t)
        submit_median = statistics.median(t[1] for t in timings if t)
        told = 20 + args.alone
        rows.append(("GET /api/queues/ median (baseline)", ms(baseline), "1.00x"))
        rows.append(
            ("claim's pick inside PostgreSQL, median", ms(pick_s),
             f"{pick_s / baseline:.2f}x baseline; the plan {pick_shape}")
        )  # fmt: skip
        rows.append(
            ("one annotator: next median", ms(next_median),
             f"{next_median / baseline:.2f}x baseline (target <= 10 ms)")
        )  # fmt: skip
        rows.append(
            ("one annotator: submit median", ms(submit_median),
             f"{submit_median / baseline:.2f}x baseline (target <= 15 ms)")
        )  # fmt: skip
        rows.append(("one annotator: labels/s", f"{1 / (next_median + submit_median):.0f}", ""))

        # (2) twenty annotators, closed loop
        stop = time.monotonic() + args.seconds
        latencies: list[float] = []
        counts = [0] * ANNOTATORS
        errors: list[BaseException] = []
        lock = threading.Lock()
        go = threading.Barrier(ANNOTATORS + 1)

        def annotate(n: int) -> None:
            client = Client(port, tokens[n])
            mine: list[float] = []
            try:
                go.wait()
                while time.monotonic() < stop:
                    timing = label_once(client, queue_id)
                    if timing is None:
                        break
                    mine.extend(timing)
                    counts[n] += 1
            except BaseException as error:  # reported below
                errors.append(error)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=annotate, args=(n,)) for n in range(ANNOTATORS)]
        for thread in threads:
            thread.start()
        go.wait()
        started = time.monotonic()
        cpu_before = cpu_seconds(server.pid)
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        cpu_after = cpu_seconds(server.pid)
        if errors:
            raise errors[0]
        total = sum(counts)
        told += total
        rate = total / elapsed
        p95 = percentile(latencies, 0.95)
        rows.append(
            (f"{ANNOTATORS} annotators: labels/s", f"{rate:.0f}",
             f"{rate * (next_median + submit_median):.2f}x one annotator (target >= 150/s)")
        )  # fmt: skip
        rows.append(
            (f"{ANNOTATORS} annotators: p50 request", ms(percentile(latencies, 0.5)),
             f"{percentile(latencies, 0.5) / baseline:.2f}x baseline")
        )  # fmt: skip
        rows.append(
            (f"{ANNOTATORS} annotators: p95 request", ms(p95),
             f"{p95 / baseline:.2f}x baseline (target <= 100 ms)")
        )  # fmt: skip
        cores = {part: (cpu_after[part] - cpu_before[part]) / elapsed for part in cpu_after}
        rows.append(
            (f"{ANNOTATORS} annotators: CPU cores busy (of {os.cpu_count()})",
             f"{sum(cores.values()):.2f}",
             ", ".join(f"{part} {used:.2f}" for part, used in cores.items()))
        )  # fmt: skip
        problems = check_rules(queue_id, told)
        rows.append(
            ("rules after the run (k, once each, no lost submit)",
             "hold" if not problems else "BROKEN", "; ".join(problems))
        )  # fmt: skip
    finally:
        if server is not None:
            process_stop(server)
        connections.close_all()
        if not args.keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    return rows, problems


def _numbers(text: str, kind: type[float] | type[int]) -> list[float]:
    return [kind(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", default="2000,100000", help="queue sizes, comma-separated")
    parser.add_argument(
        "--done", default="0,0.5", help="shares of items labelled k times before the run"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the load phase")
    parser.add_argument("--alone", type=int, default=300, help="labels in the one-annotator phase")
    parser.add_argument("--quick", action="store_true", help="2k and 20k items, a few seconds")
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn worker processes")
    # Persistent connections leak under ASGI (a thread per request): 0, as deployed.
    parser.add_argument("--conn-max-age", type=int, default=0, help="DB_CONN_MAX_AGE")
    parser.add_argument("--keep", action="store_true", help="keep the last scratch database")
    # One case in a process of its own (Django's settings are read once a process).
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.items, args.seconds, args.alone = "2000,20000", 5.0, 100
    if args.case:
        items, done, report = args.case.split(":", 2)
        rows, problems = run_case(args, int(items), float(done))
        Path(report).write_text(json.dumps({"rows": rows, "problems": problems}))
        return
    bench_database_url(os.environ.get("DATABASE_URL", ""))  # refuses anything but PostgreSQL
    os.environ.update(
        BENCH_BASE_DATABASE_URL=os.environ["DATABASE_URL"],
        ARBITER_VAR_DIR=tempfile.mkdtemp(prefix="arbiter-bench-"),
        DJANGO_SETTINGS_MODULE="config.settings",
        HF_HUB_OFFLINE="1",
    )
    cases = [
        (int(n), done) for n in _numbers(args.items, int) for done in _numbers(args.done, float)
    ]
    results: list[tuple[str, list[Row]]] = []
    broken = False
    for items, done in cases:
        title = f"{items:,} items, " + ("fresh" if not done else f"{done:.0%} done")
        print(f"--- {title}", flush=True)
        report = Path(os.environ["ARBITER_VAR_DIR"]) / "case.json"
        passed = [arg for arg in sys.argv[1:] if arg not in ("--quick",)]
        command = [sys.executable, __file__, *passed, "--seconds", str(args.seconds),
                   "--alone", str(args.alone), "--case", f"{items}:{done}:{report}"]  # fmt: skip
        subprocess.run(command, cwd=ROOT, check=True)
        result = json.loads(report.read_text())
        results.append((title, [tuple(row) for row in result["rows"]]))
        broken = broken or bool(result["problems"])

    print()
    print(f"server: uvicorn, {args.web_workers} workers, DB_CONN_MAX_AGE={args.conn_max_age}")
    width = max(len(row[0]) for _, rows in results for row in rows)
    for title, rows in results:
        print()
        print(f"{title.ljust(width)}  {'value':>10}  ratio / target")
        print(f"{'-' * width}  {'-' * 10}  {'-' * 40}")
        for measure, value, ratio in rows:
            print(f"{measure.ljust(width)}  {value:>10}  {ratio}")
    if broken:
        sys.exit(1)


if __name__ == "__main__":
    main()
