"""In Chromium, with a real worker on the bundled model: a researcher writes a two-principle
constitution, adds a model annotator to a queue, runs it, reads agreement per principle and
opens a disagreement in the preview."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from feedback.models import Constitution, LabellingRun
from tests.annotations.factories import make_queue, pairwise, pairwise_gold
from tests.factories import ModelConfigFactory
from tests.feedback.conftest import humans_label
from tests.helpers import browser_login, screenshots_at_both_widths

pytestmark = [pytest.mark.browser, pytest.mark.worker]
SHOTS = Path(os.environ.get("ARBITER_SHOTS_DIR", "/tmp/feedback"))
PRINCIPLES = ["Prefer the more helpful response.", "Prefer the response that <b>admits</b> doubt."]


def test_write_a_constitution_run_it_and_open_a_disagreement(
    live_asgi_server, celery_worker_process, page, researcher, annotator, annotator2
):
    queue = make_queue(name="demo prefs", members=[annotator, annotator2],
                       items=pairwise(4) + pairwise_gold(2), labels_per_item=2)  # fmt: skip
    humans_label(queue, [annotator, annotator2], {"0": "a", "1": "b", "2": "a", "3": "b"})
    config = ModelConfigFactory(name="SmolLM2 judge", timeout_s=600)
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.post_data or "") if r.method == "POST" else None)
    base = live_asgi_server.url
    browser_login(page, base, researcher.username)

    page.goto(f"{base}/ai-feedback/constitutions/new/")
    page.fill("input[name=name]", "Helpful and humble")
    page.fill("textarea[name=principles]", "\n".join(PRINCIPLES))
    page.click("#constitution-form button[type=submit]")
    page.wait_for_url("**/ai-feedback/constitutions/*/")
    sent = parse_qs(posted[-1])
    assert sent["principles"][0].splitlines() == PRINCIPLES
    constitution = Constitution.objects.get(name="Helpful and humble")
    assert page.locator("ol.principles li").all_text_contents() == PRINCIPLES

    page.goto(f"{base}/ai-feedback/annotators/new/?queue={queue.pk}")
    page.fill("input[name=name]", "smol judge")
    page.select_option("select[name=model_config]", str(config.pk))
    page.select_option("select[name=constitution]", str(constitution.pk))
    page.click("#annotator-form button[type=submit]")
    page.wait_for_url("**/ai-feedback/annotators/*/")

    page.click("#run-start")
    page.wait_for_url("**/ai-feedback/runs/*/")
    run = LabellingRun.objects.get()
    # The progress card follows the run; once done the page reloads with the agreement.
    page.wait_for_selector(".ai-agreement", timeout=400_000)
    run.refresh_from_db()
    assert run.status == "done", run.error
    assert page.text_content("#run-status") == "done"
    rows = {
        short: page.text_content(f'tr[data-principle="{short}"]') for short in ("All", "P1", "P2")
    }
    for text in rows.values():
        # Each figure with its n and interval; the methods are stated above the table.
        assert "n = " in text and re.search(r"\d+ % \d+/\d+ · \d+–\d+ %", text)
    method = page.text_content(f"#ai-agreement-{run.pk} p.muted")
    assert "Wilson 95 %" in method and "percentile bootstrap over items" in method
    # The principle is shown escaped, as written.
    assert "<b>admits</b> doubt" in rows["P2"]
    screenshots_at_both_widths(page, SHOTS, "run")

    page.goto(f"{base}/queues/{queue.pk}/dashboard/")
    assert page.is_visible(f"#ai-agreement-{run.pk}")
    assert "model" in page.text_content(f"tr:has-text('smol judge (run {run.pk})')")
    screenshots_at_both_widths(page, SHOTS, "dashboard")
    link = page.locator(f"#ai-agreement-{run.pk} .ai-strongest a").first
    href = link.get_attribute("href")
    link.click()
    page.wait_for_url(f"**{href}")
    item_id = int(href.split("item=")[1])
    assert queue.items.filter(pk=item_id, is_gold=False).exists()
    assert "answer A" in page.text_content("main")
    screenshots_at_both_widths(page, SHOTS, "preview")


def test_a_greedy_server_is_refused_and_a_likert_run_reports_its_order_disagreement(
    live_asgi_server, page, researcher, annotator, monkeypatch
):
    # No worker: the run is executed here, on a fake model that always answers "1".
    import llm.generation
    from feedback.labelling import labelling_run_execute
    from feedback.models import ModelAnnotator
    from feedback.services import constitution_create, labelling_run_start
    from llm.models import Backend
    from tests.annotations.factories import likert, likert_gold
    from tests.feedback.fakes import AlwaysFirst

    monkeypatch.setattr(llm.generation, "backend_for", lambda config: AlwaysFirst())
    page.set_default_timeout(120_000)  # a shared machine: pages can take long to load
    queue = make_queue(name="ratings", kind="likert", members=[annotator],
                       items=likert(3) + likert_gold(1, 5))  # fmt: skip
    constitution = constitution_create(name="Plain", principles=PRINCIPLES, user=researcher)
    greedy = ModelConfigFactory(name="greedy server", backend=Backend.OPENAI, model="m",
                                base_url="http://127.0.0.1:9/v1", temperature=0.0)  # fmt: skip
    local = ModelConfigFactory(name="local model")
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.post_data or "") if r.method == "POST" else None)
    base = live_asgi_server.url
    browser_login(page, base, researcher.username)

    page.goto(f"{base}/ai-feedback/annotators/new/?queue={queue.pk}")
    page.fill("input[name=name]", "rater")
    page.select_option("select[name=model_config]", str(greedy.pk))
    page.select_option("select[name=constitution]", str(constitution.pk))
    page.check("input[name=counts_toward_k]")
    page.click("#annotator-form button[type=submit]")
    page.wait_for_selector("#annotator-form .error")
    sent = parse_qs(posted[-1])
    assert sent["model_config"] == [str(greedy.pk)] and sent["counts_toward_k"] == ["on"]
    assert "greedy server is served by an OpenAI-compatible server" in page.text_content("main")
    assert not ModelAnnotator.objects.exists()
    screenshots_at_both_widths(page, SHOTS, "annotator-refused")

    page.select_option("select[name=model_config]", str(local.pk))
    page.click("#annotator-form button[type=submit]")
    page.wait_for_url("**/ai-feedback/annotators/*/")
    rater = ModelAnnotator.objects.get()
    assert rater.counts_toward_k and rater.model_config == local

    run = labelling_run_start(annotator=rater, user=researcher)
    labelling_run_execute(run_id=run.pk)
    page.goto(f"{base}/ai-feedback/runs/{run.pk}/")
    row = page.text_content(f'#ai-agreement-{run.pk} tr[data-principle="All"]')
    # Items, no option, then the orders' disagreement: every item, both principles.
    assert re.search(r"100 % 8/8 · \d+–100 %", row), row
    screenshots_at_both_widths(page, SHOTS, "likert-run")
