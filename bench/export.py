"""Export benchmark: labels to JSONL against Postgres's own COPY of the same rows.

Run: DATABASE_URL=postgres://… .venv/bin/python bench/export.py [--labels 1000000]

Works in a scratch database `<name>_bench` next to DATABASE_URL's (created, migrated, dropped).
It fills one pairwise queue with labels (3 per item) by SQL, then measures, in the same run:
  (a) baseline: `COPY (SELECT <the rows the export reads>) TO STDOUT` into a file;
  (b) `manage.py export_labels` (per-label JSONL: Postgres writes the lines, COPY streams
      them) in a child process: wall time (target <= 2x the COPY) and peak RSS (< 300 MB);
  (c) the same export at a tenth of the size, to show the memory does not grow with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ANNOTATORS = 3


def bench_database_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        sys.exit("bench/export.py needs PostgreSQL: set DATABASE_URL=postgres://…")
    name = parts.path.lstrip("/") + "_bench"
    return urlunsplit(parts._replace(path=f"/{name}")), name


def admin_connection(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    parts = urlsplit(url)
    return psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True)


def fill(conn, *, labels: int, name: str) -> int:  # type: ignore[no-untyped-def]
    """One queue, labels // 3 items with a realistic payload, 3 labels each. Returns queue id."""
    items = labels // ANNOTATORS
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO annotations_queue (name, kind, instructions, labels_per_item, priority,"
            " gold_rate, lease_minutes, item_count, created_at)"
            " VALUES (%s, 'pairwise', '', 3, 'fifo', 0, 10, %s, now()) RETURNING id",
            (name, items),
        )
        queue_id = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO annotations_item (queue_id, payload, external_id, random_key, is_gold,"
            " label_count, complete, created_at)"
            " SELECT %s, jsonb_build_object("
            "  'prompt', 'Which of these answers explains question ' || g || ' better?',"
            "  'response_a', repeat('The first answer says something useful. ', 5) || g,"
            "  'response_b', repeat('The second answer says \"something\" else.\n', 5) || g,"
            "  'system', ''),"
            " 'item-' || g, random(), false, 3, true, now()"
            " FROM generate_series(1, %s) AS g",
            (queue_id, items),
        )
        cur.execute(
            "INSERT INTO annotations_label (queue_id, item_id, annotator_id, value, time_spent_ms,"
            " client_request_id, is_gold, created_at)"
            " SELECT i.queue_id, i.id, u.id,"
            "  jsonb_build_object('choice',"
            "   (ARRAY['a','b','tie','both_bad'])[1 + (i.id + u.id) %% 4]),"
            "  1000 + (i.id * 7 + u.id) %% 9000, gen_random_uuid(), false, now()"
            " FROM annotations_item i"
            " CROSS JOIN (SELECT id FROM auth_user WHERE username LIKE 'bench-export-%%') u"
            " WHERE i.queue_id = %s",
            (queue_id,),
        )
        cur.execute("ANALYZE annotations_label; ANALYZE annotations_item")
    return queue_id


COPY_SQL = (
    "COPY (SELECT l.id, l.item_id, l.queue_id, l.annotator_id, l.value, l.time_spent_ms,"
    " l.created_at, i.external_id, i.payload"
    " FROM annotations_label l JOIN annotations_item i ON i.id = l.item_id"
    " WHERE l.queue_id = {queue} AND NOT l.is_gold ORDER BY l.item_id, l.id) TO STDOUT"
)


def copy_out(conn, queue_id: int, path: Path) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    sql = COPY_SQL.format(queue=int(queue_id))
    with conn.cursor() as cur, path.open("wb") as out, cur.copy(sql) as copy:
        for block in copy:
            out.write(block)
    return time.perf_counter() - start


def export_child(env: dict[str, str], queue: str, path: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of `manage.py export_labels` in a fresh process."""
    code = (
        "import resource, subprocess, sys, time;"
        "start = time.perf_counter();"
        "subprocess.run(sys.argv[1:], check=True);"
        "wall = time.perf_counter() - start;"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024;"
        "print(f'{wall} {peak}')"
    )
    command = [PYTHON, "manage.py", "export_labels", "--queue", queue, "--output", str(path)]
    result = run([PYTHON, "-c", code, *command], env)
    wall, peak = result.stdout.split()[-2:]
    return float(wall), float(peak)


def check_export(path: Path, size: int) -> None:
    """The export is JSONL with one record per label, each with the export's fields."""
    fields = {"queue", "item_id", "external_id", "label", "annotator", "labelled_at"}
    fields |= {"time_spent_ms", "payload"}
    lines = 0
    with path.open("rb") as export:
        for line in export:
            record = json.loads(line)
            assert set(record) == fields and isinstance(record["payload"], dict), record
            lines += 1
    assert lines == size, (lines, size)


def django_startup(env: dict[str, str]) -> float:
    start = time.perf_counter()
    run([PYTHON, "manage.py", "shell", "-c", "import annotations.exports"], env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    url, name = bench_database_url(os.environ.get("DATABASE_URL", ""))
    env = dict(os.environ, DATABASE_URL=url, HF_HUB_OFFLINE="1")
    env.setdefault("ARBITER_VAR_DIR", tempfile.mkdtemp(prefix="arbiter-bench-"))
    admin = admin_connection(url)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    rows: list[tuple[str, str, str]] = []
    try:
        run([PYTHON, "manage.py", "migrate", "--verbosity", "0"], env)
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO auth_user (username, password, is_superuser, first_name, last_name,"
                " email, is_staff, is_active, date_joined)"
                " SELECT 'bench-export-' || g, '!', false, '', '', '', false, true, now()"
                " FROM generate_series(1, %s) g",
                (ANNOTATORS,),
            )
            sizes = [("large", args.labels), ("small", max(3, args.labels // 10))]
            queues = {}
            for label, size in sizes:
                start = time.perf_counter()
                queues[label] = fill(conn, labels=size, name=f"bench-{label}")
                print(f"filled {size:,} labels in {time.perf_counter() - start:.1f} s", flush=True)
            tmp = Path(env["ARBITER_VAR_DIR"])
            startup = django_startup(env)
            rows.append(("Django start-up (in each export below)", f"{startup:.2f} s", ""))
            for label, wanted in sizes:
                size = wanted // ANNOTATORS * ANNOTATORS
                copy_s = min(copy_out(conn, queues[label], tmp / "copy.txt") for _ in range(2))
                # Best of two for both sides: this machine may be busy with other work.
                runs = [export_child(env, f"bench-{label}", tmp / "export.jsonl") for _ in range(2)]
                wall, peak = min(run[0] for run in runs), max(run[1] for run in runs)
                check_export(tmp / "export.jsonl", size)
                export_s = wall - startup
                rows.append((f"COPY out, {size:,} rows (baseline)", f"{copy_s:.2f} s", "1.00x"))
                rows.append(
                    (
                        f"export_labels JSONL, {size:,} rows",
                        f"{export_s:.2f} s",
                        f"{export_s / copy_s:.2f}x COPY (target <= 2x)",
                    )
                )
                rows.append(
                    (
                        f"export_labels peak memory, {size:,} rows",
                        f"{peak:.0f} MB",
                        "target < 300 MB",
                    )
                )
    finally:
        if not args.keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure'.ljust(width)}  {'value':>10}  ratio / target")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 30}")
    for measure, value, ratio in rows:
        print(f"{measure.ljust(width)}  {value:>10}  {ratio}")


if __name__ == "__main__":
    main()
