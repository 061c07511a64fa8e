"""The training-run page in Chromium: progress and losses update while it runs (htmx
polling), lineage on the model list; the Distil page refuses a set that is too small. At
1366 and 390 px."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from llm.models import TrainingRun, TrainingStatus
from llm.schemas import CurvePoint, Curves
from tests.helpers import browser_login, screenshots_at_both_widths, wait_for
from tests.llm.test_training_views import finished_run
from tests.llm.training_data import bundled_config

pytestmark = [pytest.mark.browser]

SHOTS = Path(os.environ.get("ARBITER_SCREENSHOTS", "/tmp/training-run-shots"))


@pytest.fixture
def patient_page(page):
    # A 2-core machine shared by several test runs has taken over 15 s to serve a login page.
    page.set_default_timeout(90_000)
    return page


def test_a_researcher_watches_a_run_finish_and_finds_its_lineage(
    live_asgi_server, patient_page, researcher
):
    page = patient_page
    parent = bundled_config()
    run = finished_run(parent)
    running = Curves(train=[CurvePoint(step=1, loss=2.0)], eval=[CurvePoint(step=0, loss=2.2)])
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingStatus.RUNNING, progress_step=1, eval_loss_after=None,
        curves=running.model_dump(),
    )  # fmt: skip
    browser_login(page, live_asgi_server.url, "researcher")
    page.goto(f"{live_asgi_server.url}/models/training/{run.pk}/")
    assert page.locator("#run-step").inner_text() == "step 1 of 2"
    assert page.locator("#run-eval-after").inner_text() == "—"
    screenshots_at_both_widths(page, SHOTS, "training-run-running")

    train = [CurvePoint(step=1, loss=2.0), CurvePoint(step=2, loss=1.5)]
    finished = Curves(
        train=train, eval=[CurvePoint(step=0, loss=2.2), CurvePoint(step=2, loss=1.6)]
    )
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingStatus.DONE, progress_step=2, eval_loss_after=1.6,
        curves=finished.model_dump(),
    )  # fmt: skip
    # Polled from Python: a string predicate is eval'd in the page, which the CSP refuses.
    wait_for(lambda: page.text_content("#run-status") == "done", timeout=90, what="done")
    assert page.locator("#run-eval-after").inner_text() == "1.6000"
    assert page.locator("#run-loss circle").count() == 2
    screenshots_at_both_widths(page, SHOTS, "training-run-done")

    page.goto(f"{live_asgi_server.url}/models/{run.result_id}/")
    assert "came from" in page.locator("#lineage").inner_text()
    page.goto(f"{live_asgi_server.url}/models/")
    assert "on 40 rows" in page.locator("table").inner_text()
    screenshots_at_both_widths(page, SHOTS, "models-lineage")


def test_the_distil_page_says_why_nothing_started(live_asgi_server, patient_page, researcher):
    page = patient_page
    base = bundled_config()
    browser_login(page, live_asgi_server.url, "researcher")
    page.goto(f"{live_asgi_server.url}/trees/distil/")
    assert "0 rows with these filters — a run needs at least 20" in page.inner_text("#distil-rows")
    page.select_option("select[name=base]", str(base.pk))
    page.fill("input[name=name]", "iteration 1")
    with page.expect_request(lambda r: r.method == "POST") as sent:
        page.click("button:has-text('Distil into a new model')")
    form = parse_qs(sent.value.post_data or "")
    assert form["base"] == [str(base.pk)] and form["name"] == ["iteration 1"]
    assert "a training run needs at least 20" in page.locator("[role=alert]").inner_text()
    assert not TrainingRun.objects.exists()
    screenshots_at_both_widths(page, SHOTS, "distil-refused")
