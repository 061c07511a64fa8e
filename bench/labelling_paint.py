"""Labelling page in Chromium: keypress to the next item painted, on the embedded default.

Run: .venv/bin/python bench/labelling_paint.py [--items 50]

Starts what `make run` would on a fresh machine, in a scratch directory: SQLite under it, the
embedded Redis, and uvicorn serving config.asgi on a free loopback port. An annotator signs in
in headless Chromium (Playwright, /usr/bin/chromium), opens a pairwise queue and labels --items
items with the `1` key, one at a time, as a person would. For each item the page itself
measures, with the browser's own clock:

  keypress to paint: from the key event's timestamp to the first frame after the next item is
      in the page (a requestAnimationFrame callback, then a task after that frame) — target
      p95 <= 16.7 ms (one frame at 60 Hz: the page holds the next item, claimed ahead, and
      swaps it in on the key);
  the submit's round trip: the POST's resource timing (request start to response end), the
      baseline: what the server and the network take, which the page cannot beat.

Prints p50 and p95 of both and the ratio of paint to round trip; the rest is htmx swapping
the work area and the browser painting it. A bench, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
PASSWORD = "paint-bench-password"
WARM_UP = 5

# Installed before the page's own scripts: the key's timestamp, then, once the next item is in
# the page, the first frame after it (rAF runs before the frame; a task queued there runs
# after it is produced). SUBMIT_PATH: the part of the label POST's URL its timing is kept by.
PROBE_TEMPLATE = """
(() => {
  window.paints = [];
  window.rounds = [];
  let keyAt = null;
  document.addEventListener("keydown", (event) => { keyAt = event.timeStamp; }, true);
  let shown = null;
  new MutationObserver(() => {
    const item = document.querySelector("#work article.item");
    if (!item || item.id === shown) return;
    shown = item.id;
    if (keyAt === null) return;
    const from = keyAt;
    keyAt = null;
    requestAnimationFrame(() => setTimeout(() => {
      window.paints.push(performance.now() - from);
    }, 0));
  }).observe(document, { childList: true, subtree: true });
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.name.includes("SUBMIT_PATH")) {
        window.rounds.push(entry.responseEnd - entry.startTime);
      }
    }
  }).observe({ type: "resource", buffered: false });
})();
"""


# Settled: no submit of the page's in flight (the resource timing of each has come in) and
# the next item held, if the page holds items ahead at all.
HELD = """() => {
  const held = document.querySelector("#work > template.ahead") !== null;
  const prefetching = document.querySelector("#work[data-release]") !== null;
  return !prefetching || held || document.querySelector("#work article.item") === null;
}"""


def probe(submit_path: str = "/label/submit/") -> str:
    """The measuring script for a page whose label POSTs go to a URL containing
    `submit_path` (bench/experiments.py measures the study's task page with it)."""
    return PROBE_TEMPLATE.replace("SUBMIT_PATH", submit_path)


PROBE = probe()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def setup(items: int) -> int:
    """An annotator and a pairwise queue of realistic items, through the project's services."""
    import django

    django.setup()
    from django.contrib.auth.models import Group, User

    from annotations.kinds import PairwisePayload
    from annotations.models import Queue
    from annotations.services import NewItem, queue_items_create, queue_members_set
    from core.roles import Role

    user = User.objects.create_user(username="painter", password=PASSWORD)
    user.groups.add(Group.objects.get(name=Role.ANNOTATOR))
    queue = Queue.objects.create(name="paint bench", kind="pairwise", labels_per_item=1)
    queue_members_set(queue=queue, users=[user])
    text = "An answer of a realistic length, written by a model for a person to judge. " * 4
    queue_items_create(
        queue=queue,
        items=[
            NewItem(
                payload=PairwisePayload(
                    prompt=f"Question {n}?", response_a=text + "A", response_b=text + "B"
                )
            )
            for n in range(items)
        ],
    )
    return queue.pk


def wait_until(page: Any, predicate: str, timeout_s: float = 30.0) -> None:
    """Poll `predicate` in the page. Not `wait_for_function`: that evaluates a string with
    eval(), which the page's Content-Security-Policy (no unsafe-eval) refuses."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page never satisfied {predicate}")
        page.wait_for_timeout(5)


def key_to_paint(page: Any, done: int, key: str = "1") -> None:
    """One measured key press on a page with the probe installed, `done` measured before it.
    A person reads the item first (seconds): the key comes once the page has settled, its
    last submit answered and the next item held (template.ahead), when it holds one (a page
    from before prefetching never does); returns once the next item is painted."""
    page.wait_for_selector("#work[data-ready] article.item")
    wait_until(page, HELD)
    page.wait_for_timeout(50)
    page.keyboard.press(key)
    wait_until(page, f"() => window.paints.length > {done}")


def measure(base: str, queue_id: int, count: int) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{base}/accounts/login/")
        page.fill("input[name=username]", "painter")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/**")
        page.add_init_script(PROBE)
        page.goto(f"{base}/queues/{queue_id}/label/")
        for n in range(count):
            key_to_paint(page, n)
        paints: list[float] = page.evaluate("window.paints")
        rounds: list[float] = page.evaluate("window.rounds")
        browser.close()
    return paints[WARM_UP:], rounds[WARM_UP:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=50, help="items measured (after warm-up)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")

    var_dir = Path(tempfile.mkdtemp(prefix="arbiter-paint-"))
    os.environ.pop("DATABASE_URL", None)  # the embedded default: SQLite under var/
    os.environ.update(
        ARBITER_VAR_DIR=str(var_dir),
        REDIS_URL=f"unix://{var_dir / 'redis.sock'}",
        DJANGO_SETTINGS_MODULE="config.settings",
        HF_HUB_OFFLINE="1",
        LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(ROOT))
    from bench.serving import asgi_serve, process_stop
    from config.embedded import embedded_redis_start

    redis = embedded_redis_start(socket_path=var_dir / "redis.sock", log_path=var_dir / "redis.log")
    server = None
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, check=True
        )
        queue_id = setup(args.items + WARM_UP + 1)
        from django.db import connections

        connections.close_all()
        server, port = asgi_serve()
        paints, rounds = measure(f"http://127.0.0.1:{port}", queue_id, args.items + WARM_UP)
    finally:
        if server is not None:
            process_stop(server)
        redis.terminate()
        redis.wait(timeout=10)

    p50, p95 = statistics.median(paints), percentile(paints, 0.95)
    r50, r95 = statistics.median(rounds), percentile(rounds, 0.95)
    print()
    print(f"labelling page, embedded default (SQLite), headless Chromium, {len(paints)} items")
    print(f"{'measure':<38}  {'p50':>8}  {'p95':>8}  ratio / target")
    print(f"{'-' * 38}  {'-' * 8}  {'-' * 8}  {'-' * 36}")
    print(f"{'submit round trip (baseline)':<38}  {r50:>5.1f} ms  {r95:>5.1f} ms  1.00x")
    print(
        f"{'keypress to next item painted':<38}  {p50:>5.1f} ms  {p95:>5.1f} ms  "
        f"{p50 / r50:.2f}x / {p95 / r95:.2f}x baseline (target p95 <= 16.7 ms)"
    )


if __name__ == "__main__":
    main()
