"""Starting a policy run in Chromium: a researcher fills the form (the request carries what
was chosen, a gold reward model included), lands on the run's page, and once the run is done
reads its report (proxy and gold reward) and finds the new config in the model list with
where it came from; a refusal is shown in the page. At 1366 and 390 px."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock
from urllib.parse import parse_qs

import pytest

from llm.models import TrainingRun, TrainingStatus
from llm.schemas import PolicyReport
from llm.services import training_run_finish
from tests.helpers import browser_login, screenshots_at_both_widths
from tests.llm.training_data import bundled_config
from tests.rewards.factories import (
    add_items,
    label_all,
    preference_items,
    preference_queue,
    scorable,
)

pytestmark = [pytest.mark.browser]

SHOTS = Path(os.environ.get("ARBITER_SCREENSHOTS", "/tmp/policy-run-shots"))


@pytest.fixture
def patient_page(page):
    page.set_default_timeout(90_000)  # a shared 2-core machine can be slow to serve
    return page


def test_a_researcher_starts_a_dpo_run_and_finds_the_new_config(
    live_asgi_server, patient_page, researcher, annotator, settings, tmp_path
):
    page = patient_page
    settings.LLM_TRAINING_MIN_ROWS = 4
    queue = preference_queue(members=[annotator], name="kindness prefs")
    label_all(queue, annotator, add_items(queue, preference_items(6, seed=1)))
    parent = bundled_config()
    proxy, gold = scorable(queue, tmp_path, "kindness"), scorable(queue, tmp_path, "kindness gold")
    browser_login(page, live_asgi_server.url, "researcher")
    page.goto(f"{live_asgi_server.url}/models/training/")
    page.click("a:has-text('New policy run')")
    screenshots_at_both_widths(page, SHOTS, "policy-run-form")

    # Rejection sampling without a reward model: refused in the page, nothing started.
    page.select_option("select[name=kind]", "rejection-sampling")
    page.select_option("select[name=parent]", str(parent.pk))
    page.fill("input[name=name]", "kinder")
    page.select_option("select[name=queue]", str(queue.pk))
    page.click("button:has-text('Start training')")
    assert "choose one with an active version" in page.locator("[role=alert]").first.inner_text()
    assert not TrainingRun.objects.exists()
    screenshots_at_both_widths(page, SHOTS, "policy-run-refused")

    # A gold that is the proxy says nothing: refused.
    page.select_option("select[name=kind]", "dpo")
    page.select_option("select[name=reward_model]", str(proxy.pk))
    page.select_option("select[name=gold_model]", str(proxy.pk))
    page.click("button:has-text('Start training')")
    assert "is the proxy itself" in page.locator("[role=alert]").first.inner_text()
    assert not TrainingRun.objects.exists()

    page.select_option("select[name=gold_model]", str(gold.pk))
    page.fill("input[name=max_steps]", "1")
    with (
        mock.patch("llm.tasks.training_run_task.delay") as enqueue,
        page.expect_request(lambda r: r.method == "POST") as sent,
    ):
        page.click("button:has-text('Start training')")
        page.wait_for_url(lambda url: "/models/training/" in url)
    form = parse_qs(sent.value.post_data or "")
    assert form["kind"] == ["dpo"] and form["queue"] == [str(queue.pk)]
    assert form["parent"] == [str(parent.pk)] and form["name"] == ["kinder"]
    assert form["reward_model"] == [str(proxy.pk)] and form["gold_model"] == [str(gold.pk)]
    run = TrainingRun.objects.get()
    enqueue.assert_called_once_with(run.pk)
    assert page.locator("#run-status").inner_text() == "queued"
    assert "DPO on preference pairs" in page.inner_text("body")

    # The worker's part, stood in for: the run finishes with a checkpoint.
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.RUNNING)
    checkpoint = tmp_path / f"run-{run.pk}"
    checkpoint.mkdir()
    report = PolicyReport(
        prompts=2, samples_per_prompt=4, kl_mean=0.25, kl_low=0.1, kl_high=0.4, kl_method="m",
        proxy_reward_version=proxy.active_version_id, proxy_reward_label="kindness v1",
        proxy_new=0.9, proxy_parent=0.2, proxy_diff_low=0.5, proxy_diff_high=0.9,
        gold_reward_version=gold.active_version_id, gold_reward_label="kindness gold v1",
        gold_new=0.1, gold_parent=0.15, gold_diff_low=-0.2, gold_diff_high=0.1,
    )  # fmt: skip
    config = training_run_finish(run_id=run.pk, checkpoint=checkpoint,
                                 report=report.model_dump(mode="json"))  # fmt: skip
    assert config is not None
    page.reload()
    assert page.locator("#run-proxy").inner_text() == (
        "new 0.900 against parent 0.200; difference 95 % interval 0.500 to 0.900"
    )
    assert page.locator("#run-gold").inner_text() == (
        "new 0.100 against parent 0.150; difference 95 % interval -0.200 to 0.100"
    )
    assert page.locator("#run-gold-version").inner_text().startswith("kindness gold v1")
    reading = page.locator("#run-gain-not-in-gold").inner_text()
    assert "The proxy's gain is not the gold's" in reading
    screenshots_at_both_widths(page, SHOTS, "policy-run-report")
    page.goto(f"{live_asgi_server.url}/models/")
    row = page.locator("tr", has_text="kinder")
    assert "DPO on preference pairs of bundled on 6 rows" in " ".join(row.inner_text().split())
    screenshots_at_both_widths(page, SHOTS, "policy-run-model-list")
