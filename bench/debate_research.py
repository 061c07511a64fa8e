"""Debate research benchmark: NYU import, analytics at 10,000 debates, batched AI debates.

Run: .venv/bin/python bench/debate_research.py [--rooms 631] [--debates 10000] [--tokens 24]
     (DATABASE_URL=postgres://… for PostgreSQL; default the SQLite database under var/)

Everything runs inside one transaction that is rolled back at the end: the database is
migrated, and left as it was. Each figure is printed next to a baseline from the same run:
  (a) importing N full room files (the 90 sample rooms repeated under new names) vs only
      parsing them as JSON (target: N = 631 in <= 60 s);
  (b) the analytics page (query, statistics, bootstrap, template) with N debates and a
      verdict each vs fetching the same verdict rows alone (target <= 500 ms);
  (c) 8 simultaneous AI debates' opening speeches through the batch path (one
      generate_batch call) vs the same 8 debates spoken one after another (target <= 0.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NYU = ROOT / "debate" / "data" / "nyu-debate-2023"


class Rollback(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=631)
    parser.add_argument("--debates", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=24, help="new tokens per speech in (c)")
    parser.add_argument("--skip-generation", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    call_command("migrate", verbosity=0)
    rows: list[tuple[str, str, str]] = []
    try:
        with transaction.atomic():
            bench_import(rows, args.rooms)
            bench_analytics(rows, args.debates)
            if not args.skip_generation:
                bench_batch(rows, args.tokens)
            raise Rollback
    except Rollback:
        pass
    print(f"\ndatabase: {connection.vendor}; {os.cpu_count()} cores")
    width = max(len(r[0]) for r in rows)
    for name, figure, ratio in rows:
        print(f"{name:<{width}}  {figure:>14}  {ratio}")


def bench_import(rows: list[tuple[str, str, str]], rooms: int) -> None:
    from debate.research.imports import debate_files_import

    sample = sorted((NYU / "debates").glob("*.json"))
    raw = [path.read_bytes() for path in sample]
    files = [(f"bench-{i}-{sample[i % len(sample)].name}", raw[i % len(raw)])
             for i in range(rooms)]  # fmt: skip
    start = time.perf_counter()
    for _, data in files:
        json.loads(data)
    parse = time.perf_counter() - start
    start = time.perf_counter()
    report = debate_files_import(files=files)
    took = time.perf_counter() - start
    assert not report.errors, report.errors[:3]
    ratio = f"{took / parse:.0f}x JSON parsing alone ({parse:.2f} s); target <= 60 s"
    rows.append((f"(a) import {rooms} full rooms", f"{took:.1f} s", ratio))


def bench_analytics(rows: list[tuple[str, str, str]], count: int) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    from debate.models import Debate, Verdict
    from debate.research.analytics import Filters, verdict_rows
    from llm.models import ModelConfig

    existing = Debate.objects.count()
    need = max(0, count - existing)
    configs = [ModelConfig.objects.get_or_create(name=f"bench model {i}", defaults={
        "model": "bundled:smollm2-135m-instruct"})[0] for i in range(6)]  # fmt: skip
    rng = random.Random(0)
    debates = Debate.objects.bulk_create(
        Debate(
            question=f"bench question {i}", answer_a="a", answer_b="b",
            correct_side=rng.choice("ab"), protocol=rng.choice(["debate", "consultancy"]),
            consultant_side=rng.choice("ab"), debater_a_config=rng.choice(configs),
            debater_b_config=rng.choice(configs), status="judged", room_name=f"bench-{i}",
        )
        for i in range(need)
    )  # fmt: skip
    Verdict.objects.bulk_create(
        Verdict(debate=d, kind=rng.choice(["human", "llm"]), judge_name="bench",
                probability_a=rng.randint(1, 99), judge_turns=rng.randint(0, 8))
        for d in debates
    )  # fmt: skip
    total = Debate.objects.count()
    user, _ = User.objects.get_or_create(username="bench-researcher")
    user.is_superuser = True
    user.save()
    from django.contrib.auth.models import Group

    for group in Group.objects.filter(name__icontains="research"):
        user.groups.add(group)
    client = Client()
    client.force_login(user)
    timings, baseline = [], []
    for _ in range(5):
        start = time.perf_counter()
        list(verdict_rows(Filters()))
        baseline.append(time.perf_counter() - start)
        start = time.perf_counter()
        response = client.get("/debates/analytics/", {"group_by": "model"}, HTTP_HOST="localhost")
        timings.append(time.perf_counter() - start)
        assert response.status_code == 200, response.status_code
    page, rows_only = statistics.median(timings), statistics.median(baseline)
    rows.append((f"(b) analytics page, {total} debates", f"{page * 1000:.0f} ms",
                 f"{page / rows_only:.1f}x fetching the verdict rows alone "
                 f"({rows_only * 1000:.0f} ms); target <= 500 ms"))  # fmt: skip


def bench_batch(rows: list[tuple[str, str, str]], tokens: int) -> None:
    from django.contrib.auth.models import User

    from debate.generation import speeches_generate
    from debate.models import Debate, DebateStatus, Speech
    from llm.generation import backend_for
    from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

    config = ModelConfig.objects.get(name=BUNDLED_CONFIG_NAME)
    config.temperature, config.max_new_tokens, config.seed = 0.0, tokens, 0
    config.save()
    backend_for(config)  # load the model once, outside the timings
    user = User.objects.get(username="bench-researcher")

    def eight_debates() -> list[int]:
        speeches = []
        for i in range(8):
            debate = Debate.objects.create(
                question=f"Who took the ledger, case {i}?", answer_a="the clerk",
                answer_b="the captain", correct_side="a", passage="The clerk took the ledger.",
                debater_a_config=config, debater_b_config=config, judge=user,
                status=DebateStatus.GENERATING, current_round=1,
            )  # fmt: skip
            speeches.append(Speech.objects.create(debate=debate, round=1, side="a").pk)
        return speeches

    ids = eight_debates()
    start = time.perf_counter()
    speeches_generate(speech_ids=ids, stream=False, advance_rounds=False, max_new_tokens=tokens)
    batched = time.perf_counter() - start
    ids = eight_debates()
    start = time.perf_counter()
    for speech_id in ids:
        speeches_generate(
            speech_ids=[speech_id], stream=False, advance_rounds=False, max_new_tokens=tokens
        )
    one_by_one = time.perf_counter() - start
    done = Speech.objects.filter(pk__in=ids, status="done").count()
    assert done == 8, f"{done} of 8 speeches done"
    rows.append((f"(c) 8 debates' speeches, {tokens} tokens", f"{batched:.1f} s",
                 f"{batched / one_by_one:.2f}x one after another ({one_by_one:.1f} s); "
                 "target <= 0.5x"))  # fmt: skip


if __name__ == "__main__":
    main()
