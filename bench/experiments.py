"""Experiments benchmark: assistance generated in batches, and the analysis page at scale.

Run: .venv/bin/python bench/experiments.py [--part analysis|batch|paint|all] [--items 200]
     [--tokens 16] [--participants 100] [--labels 50] [--keys 50] [--database-url postgres://…]

Each figure is printed beside a baseline measured in the same run, as a ratio:
  (a) batch: critiques for --items items through the assistance job (generate_batch, batches
      of experiments.assistance.BATCH) against the same prompts one call each, with the
      bundled SmolLM2 model (target >= 3x the throughput);
  (b) analysis: GET of the analysis page of an experiment with --participants participants ×
      --labels labels each (every label through the services a participant's page calls),
      against GET of the experiments list (target <= 300 ms), on SQLite (a scratch file) or
      on the PostgreSQL database that --database-url names (a scratch database beside it,
      created and dropped).
  (c) paint: the study's labelling page in headless Chromium (/usr/bin/chromium), keypress
      to the next item painted (bench/labelling_paint.py's probe, measured by the page's own
      clock) for a participant whose arm shows a critique beside each item, against a
      participant of the unassisted arm on the same page, the two pages' keys interleaved
      (--keys each, after a warm-up), served by uvicorn on the same database with the
      embedded Redis (target: p50 and p95 <= 1.1× the unassisted page). The critiques are
      stored ahead as the assistance job stores them (a text of a realistic length; no model
      runs in this part).
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
    parser.add_argument("--part", choices=["analysis", "batch", "paint", "all"], default="all")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--participants", type=int, default=100)
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--keys", type=int, default=50, help="paint: keys measured per page")
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
        DATABASE_URL=database_url, LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="testserver,127.0.0.1", REDIS_URL=f"unix://{var_dir}/redis.sock",
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
        if args.part in ("paint", "all"):
            bench_paint(args, Path(var_dir))
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


def bench_paint(args: argparse.Namespace, var_dir: Path) -> None:
    from django.db import connections

    from bench.labelling_paint import CHROMIUM, WARM_UP, percentile
    from bench.serving import asgi_serve, process_stop
    from config.embedded import embedded_redis_start

    if not Path(CHROMIUM).exists():
        print(f"(c) paint: skipped, Chromium not found at {CHROMIUM} (apt-get install chromium)")
        return
    slug, pids = _paint_experiment(args.keys + WARM_UP + 1)
    connections.close_all()  # the server writes the same database
    redis = embedded_redis_start(socket_path=var_dir / "redis.sock", log_path=var_dir / "redis.log")
    server = None
    try:
        server, port = asgi_serve()
        paints = _paint_measure(f"http://127.0.0.1:{port}", slug, pids, args.keys + WARM_UP)
    finally:
        if server is not None:
            process_stop(server)
        redis.terminate()
        redis.wait(timeout=10)
    alone, helped = paints["unassisted"][WARM_UP:], paints["critique"][WARM_UP:]
    a50, a95 = statistics.median(alone), percentile(alone, 0.95)
    h50, h95 = statistics.median(helped), percentile(helped, 0.95)
    worst = max(h50 / a50, h95 / a95)
    verdict = "meets" if worst <= 1.1 else "MISSES"
    print(f"(c) study labelling page, headless Chromium, {len(alone)} keys a page, interleaved:")
    print(f"    keypress to next item painted, unassisted arm (baseline): p50 {a50:.1f} ms, "
          f"p95 {a95:.1f} ms")  # fmt: skip
    print(
        f"    with a critique beside the item: p50 {h50:.1f} ms, p95 {h95:.1f} ms "
        f"({h50 / a50:.2f}× / {h95 / a95:.2f}× the baseline; target <= 1.1×: {verdict})"
    )


# A critique of the length the default prompt asks for (two or three short sentences).
PAINT_CRITIQUE = (
    "Answer A states the sum correctly and shows the working. Answer B adds one to the "
    "result without a reason, so it is wrong; it also does not say which rule it used. "
)


def _paint_experiment(items: int) -> tuple[str, dict[str, str]]:
    """An experiment of an unassisted and a critique arm over `items` items, its critiques
    stored ahead, and a consented participant in each arm: (slug, {arm: external id})."""
    from experiments.models import Assistance, AssistanceText
    from experiments.services import (
        ArmSpec,
        experiment_create,
        participant_consent,
        participant_join,
    )
    from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

    config = ModelConfig.objects.get(name=BUNDLED_CONFIG_NAME)
    experiment = experiment_create(
        name="bench paint", slug="bench-paint",
        question_set=_question_set("bench paint set", items),
        arms=[ArmSpec(name="unassisted"),
              ArmSpec(name="critique", assistance=Assistance.CRITIQUE, model_config=config)],
        consent="ok", completion_code="BENCH", seed=1,
    )  # fmt: skip
    helped = experiment.arms.get(name="critique")
    AssistanceText.objects.bulk_create(
        AssistanceText(source_id=row.question_id, model_config=config, kind=Assistance.CRITIQUE,
                       prompt_version=helped.prompt_version, text=PAINT_CRITIQUE)
        for row in helped.arm_items.all()
    )  # fmt: skip
    pids: dict[str, str] = {}
    number = 0
    while len(pids) < 2:
        person, _ = participant_join(experiment=experiment, external_id=f"paint{number}",
                                     study_id="s", session_id="x")  # fmt: skip
        participant_consent(participant=person)
        pids.setdefault(person.arm.name, person.external_id)
        number += 1
    return experiment.slug, pids


def _paint_measure(
    base: str, slug: str, pids: dict[str, str], count: int
) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    from bench.labelling_paint import CHROMIUM, CHROMIUM_ARGS, key_to_paint, probe

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = {}
        for arm, pid in pids.items():
            # A context each: each participant has their own session cookie.
            page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
            page.set_default_timeout(30_000)
            page.add_init_script(probe("/task/label/"))
            page.goto(f"{base}/join/{slug}/?PROLIFIC_PID={pid}&STUDY_ID=s&SESSION_ID=x")
            page.wait_for_url(f"{base}/join/{slug}/task/")
            pages[arm] = page
        critique_shown = pages["critique"].locator(".assistance-text").count()
        assert critique_shown == 1 and pages["unassisted"].locator(".assistance").count() == 0
        for n in range(count):
            for page in pages.values():
                page.bring_to_front()
                key_to_paint(page, n)
        paints = {arm: list(page.evaluate("window.paints")) for arm, page in pages.items()}
        browser.close()
    return paints


if __name__ == "__main__":
    main()
