"""Experiments benchmark: assistance generated in batches, and the analysis page at scale.

Run: .venv/bin/python bench/experiments.py [--part analysis|batch|all] [--items 200]
     [--tokens 16] [--participants 100] [--labels 50] [--database-url postgres://…]

Each figure is printed beside a baseline measured in the same run, as a ratio:
  (a) batch: critiques for --items items through the assistance job (generate_batch, batches
      of experiments.assistance.BATCH) against the same prompts one call each, with the
      bundled SmolLM2 model (target >= 3x the throughput);
  (b) analysis: GET of the analysis page of an experiment with --participants participants ×
      --labels labels each (every label through the services a participant's page calls),
      against GET of the experiments list (target <= 300 ms), on SQLite (a scratch file) or
      on the PostgreSQL database that --database-url names (a scratch database beside it,
      created and dropped).
Not measured here: the labelling page's keypress-to-paint with and without a critique (the
issue's third figure).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["analysis", "batch", "all"], default="all")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--participants", type=int, default=100)
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    var_dir = tempfile.mkdtemp(prefix="arbiter-bench-exp-")
    database_url = f"sqlite:///{var_dir}/bench.sqlite3"
    scratch = None
    if args.database_url:
        parts = urlsplit(args.database_url)
        scratch = parts.path.lstrip("/") + "_bench_experiments"
        database_url = urlunsplit(parts._replace(path=f"/{scratch}"))
        _postgres(args.database_url, f'DROP DATABASE IF EXISTS "{scratch}"')
        _postgres(args.database_url, f'CREATE DATABASE "{scratch}"')
    os.environ.update(
        ARBITER_VAR_DIR=var_dir, DJANGO_SETTINGS_MODULE="config.settings", HF_HUB_OFFLINE="1",
        DATABASE_URL=database_url, LOG_LEVEL="WARNING", ALLOWED_HOSTS="testserver",
    )  # fmt: skip
    os.environ.setdefault("LLM_MODELS_DIR", str(ROOT / "var" / "models"))
    sys.path.insert(0, str(ROOT))
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, check=True
        )
        import django

        django.setup()
        print(f"database: {'PostgreSQL' if scratch else 'SQLite'}; cpu flags: {_cpu_flags()}")
        if args.part in ("analysis", "all"):
            bench_analysis(args)
        if args.part in ("batch", "all"):
            bench_batch(args)
    finally:
        if scratch:
            from django.db import connections

            connections.close_all()
            _postgres(args.database_url, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        shutil.rmtree(var_dir, ignore_errors=True)


def _postgres(url: str, statement: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(statement)  # type: ignore[arg-type]


def _cpu_flags() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16")
    return ", ".join(flag for flag in wanted if f" {flag}" in flags) or "no AVX2/AVX-512"


def _question_set(name: str, count: int):  # type: ignore[no-untyped-def]
    from annotations.kinds import ChoiceValue, PairwisePayload
    from annotations.models import Queue
    from annotations.services import NewItem, queue_items_create

    queue = Queue.objects.create(name=name, kind="pairwise", labels_per_item=3)
    queue_items_create(
        queue=queue,
        items=[
            NewItem(
                payload=PairwisePayload(
                    prompt=f"Is {n} + {n} equal to {2 * n}?",
                    response_a=f"Yes, {n} + {n} = {2 * n}.",
                    response_b=f"No, it is {2 * n + 1}.",
                ),
                gold=ChoiceValue(choice="a"),
                external_id=f"bench-{n}",
            )
            for n in range(count)
        ],
    )
    return queue


def _median_ms(call, rounds: int = 7) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_analysis(args: argparse.Namespace) -> None:
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from experiments.services import (
        ArmSpec,
        experiment_create,
        participant_join,
        participant_lease,
        response_submit,
    )

    researcher = User.objects.create(username="bench-researcher")
    researcher.groups.add(Group.objects.get(name="researcher"))
    experiment = experiment_create(
        name="bench", slug="bench", question_set=_question_set("bench set", args.labels),
        arms=[ArmSpec(name="alone", time_limit_s=60), ArmSpec(name="also alone")],
        consent="ok", completion_code="BENCH", seed=1,
    )  # fmt: skip
    started = time.perf_counter()
    for number in range(args.participants):
        person, _ = participant_join(experiment=experiment, external_id=f"p{number}",
                                     study_id="s", session_id="x")  # fmt: skip
        answered = 0
        while (lease := participant_lease(participant=person)) is not None:
            response_submit(
                participant=person, assignment_id=lease.pk,
                value={"choice": "a" if (number + answered) % 3 else "b"},
                client_request_id=uuid.uuid4(),
                now=lease.created_at + timedelta(seconds=5 + answered % 70),
            )  # fmt: skip
            answered += 1
    filled = time.perf_counter() - started
    labels = args.participants * args.labels
    print(f"(b) analysis data: {args.participants} participants × {args.labels} labels "
          f"= {labels} labels through the services in {filled:.0f} s")  # fmt: skip
    client = Client()
    client.force_login(researcher)
    page = f"/experiments/{experiment.pk}/"
    assert client.get(page).status_code == 200
    baseline = _median_ms(lambda: client.get("/experiments/"))
    analysis = _median_ms(lambda: client.get(page))
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(client.get, page)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    verdict = "meets" if analysis <= 300 else "MISSES"
    print(f"    experiments list (baseline): {baseline:.1f} ms median")
    print(f"    analysis page: {analysis:.1f} ms median ({analysis / baseline:.1f}× the list; "
          f"target <= 300 ms: {verdict})")  # fmt: skip


def bench_batch(args: argparse.Namespace) -> None:
    from experiments.assistance import BATCH, assistance_job_run
    from experiments.models import Assistance, AssistanceJob, AssistanceText
    from experiments.prompting import prompt_text
    from experiments.services import ArmSpec, experiment_create
    from llm.generation import backend_for, chat_messages
    from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

    config = ModelConfig.objects.get(name=BUNDLED_CONFIG_NAME)
    config.max_new_tokens = args.tokens
    config.temperature = 0.0
    config.timeout_s = 3600.0  # a busy shared machine must not fail the measurement
    config.save()
    experiment = experiment_create(
        name="bench batch", slug="bench-batch",
        question_set=_question_set("bench batch set", args.items),
        arms=[ArmSpec(name="alone"),
              ArmSpec(name="critique", assistance=Assistance.CRITIQUE, model_config=config)],
        consent="ok", completion_code="BENCH", seed=1,
    )  # fmt: skip
    arm = experiment.arms.get(position=1)
    backend = backend_for(config)
    kind = arm.queue.item_kind
    chats = [
        chat_messages(config, prompt_text(arm.prompt, kind, row.source.payload))
        for row in arm.arm_items.select_related("source").order_by("source_id")
        if row.source is not None  # a rating-queue arm: every item copies one
    ]
    backend.generate_batch(chats[:1], params=config.generation_params())  # load, warm up
    started = time.perf_counter()
    for chat in chats:
        backend.generate_batch([chat], params=config.generation_params())
    one_by_one = time.perf_counter() - started
    job = AssistanceJob.objects.create(arm=arm, items_total=len(chats))
    started = time.perf_counter()
    assistance_job_run(job_id=job.pk)
    batched = time.perf_counter() - started
    job.refresh_from_db()
    assert job.status == "done" and AssistanceText.objects.count() == len(chats), job.error
    ratio = one_by_one / batched
    verdict = "meets" if ratio >= 3 else "MISSES"
    print(f"(a) critiques for {len(chats)} items, {args.tokens} new tokens each:")
    print(f"    one call per item (baseline): {len(chats) / one_by_one:.2f} items/s")
    print(f"    assistance job, batches of {BATCH}: {len(chats) / batched:.2f} items/s "
          f"({ratio:.1f}× the throughput; target >= 3×: {verdict})")  # fmt: skip


if __name__ == "__main__":
    main()
