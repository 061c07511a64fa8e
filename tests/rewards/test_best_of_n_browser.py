"""In Chromium, with a real worker on the bundled models: a researcher starts a best-of-n
over-optimisation experiment from the form, watches it run, and reads the plot and its fit.
This is also the end-to-end run: real sampling, real reward-model checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rewards.models import BestOfNExperiment, ExperimentStatus
from tests.factories import ModelConfigFactory
from tests.helpers import browser_login, screenshots_at_both_widths
from tests.rewards.factories import (
    add_items,
    label_all,
    preference_items,
    preference_queue,
    reward_model_for,
    run_now,
)

pytestmark = [pytest.mark.browser, pytest.mark.worker]
SHOTS = Path(os.environ.get("ARBITER_SHOTS_DIR", "/tmp/rewards"))


def _trained(annotator, name, n, seed):
    queue = preference_queue(members=[annotator], name=f"queue {name}")
    label_all(queue, annotator, add_items(queue, preference_items(n, seed=seed, start=seed * 1000)))
    version = run_now(reward_model_for(queue, name=name))
    assert version.artifact_path, version.reason
    return version, queue


def test_a_researcher_starts_an_experiment_and_reads_the_plot(
    live_asgi_server, page, researcher, annotator, start_worker, tmp_path
):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Explain the tides."}\n{"prompt": "Explain rust."}\n'
                       '{"prompt": "Explain <b>fog</b>."}\n')  # fmt: skip
    proxy, _ = _trained(annotator, "proxy 40", 40, seed=1)
    gold, _ = _trained(annotator, "gold 100", 100, seed=2)
    # A generous per-generation timeout: 2 cores shared with other test runs.
    policy = ModelConfigFactory(name="SmolLM2 (bundled)", timeout_s=900)
    start_worker(queues="generation")
    posted: list[str] = []
    # Chromium does not hand Playwright a multipart body with a file in it: count the posts,
    # and read what the form sent from the row it made.
    page.on("request", lambda r: posted.append(r.url)
            if r.method == "POST" and "experiments/new" in r.url else None)  # fmt: skip

    page.set_viewport_size({"width": 1366, "height": 900})
    page.set_default_timeout(120_000)  # 2 cores shared with other test runs
    browser_login(page, live_asgi_server.url, researcher.username)
    page.goto(f"{live_asgi_server.url}/reward-models/experiments/")
    page.click("text=New experiment")
    page.fill("input[name=name]", "kindness, best of 4")
    page.select_option("select[name=policy]", str(policy.pk))
    page.set_input_files("input[name=prompts_file]", str(prompts))
    page.fill("input[name=samples_per_prompt]", "65")
    page.check(f"input[name=proxies][value='{proxy.pk}']")
    page.select_option("select[name=gold]", str(gold.pk))
    page.fill("input[name=max_new_tokens]", "6")
    page.click("#bon-form button[type=submit]")
    # N above the cap: the form says so and nothing starts.
    page.wait_for_selector("#bon-form .error")
    assert "less than or equal to 64" in page.text_content("#bon-form")
    assert not BestOfNExperiment.objects.exists()

    page.fill("input[name=samples_per_prompt]", "4")
    page.set_input_files("input[name=prompts_file]", str(prompts))  # a form re-shown drops files
    page.check(f"input[name=proxies][value='{proxy.pk}']")
    page.click("#bon-form button[type=submit]")
    page.wait_for_url("**/reward-models/experiments/*/")
    assert len(posted) == 2
    experiment = BestOfNExperiment.objects.get()
    assert experiment.samples_per_prompt == 4 and experiment.gold_id == gold.pk
    assert list(experiment.proxies.values_list("pk", flat=True)) == [proxy.pk]
    assert experiment.prompts[2] == "Explain <b>fog</b>."

    page.wait_for_selector("#bon-plot", timeout=900_000)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DONE, experiment.error
    # The plot: proxy and gold series with their fitted curves, n along the top.
    assert page.locator("#bon-plot .bon-series").count() == 2
    assert page.locator("#bon-plot .bon-gold circle.dot").count() == 3  # n = 1, 2, 4
    fit_points = page.get_attribute("#bon-plot .bon-gold polyline.fit", "points")
    assert len(fit_points.split()) == 41
    assert "bootstrap over prompts" in page.text_content("#bon-result")
    peak_cell = page.text_content("#bon-fit .bon-peak-n")
    assert "highest measured: n =" in peak_cell
    assert "proxy 40 v1" in page.text_content("#bon-fit")
    screenshots_at_both_widths(page, SHOTS, "best-of-n")
    with page.expect_download() as download:
        page.click("#bon-export")
    assert download.value.suggested_filename == f"best-of-n-{experiment.pk}.csv"
