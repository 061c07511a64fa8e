"""Human gold in Chromium: a researcher starts an over-optimisation experiment whose gold is
people (the request says so and names the sample size; a sample of 0 is refused in the page
with nothing started), the worker's part runs in process with synthetic scorers, an annotator
labels the blind pairs, and the researcher reads the human curve, labelled as human, with its
method. At 1366 and 390 px."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest

from annotations.models import Item
from annotations.services import queue_members_set
from rewards.best_of_n import best_of_n_run
from rewards.models import BestOfNExperiment, ExperimentStatus, HumanGold
from tests.factories import ModelConfigFactory
from tests.helpers import browser_login, screenshots_at_both_widths
from tests.rewards.factories import add_items, label_all, preference_items, preference_queue
from tests.rewards.test_best_of_n import FakeBackend, _version_with_checkpoint

pytestmark = [pytest.mark.browser]
SHOTS = Path(os.environ.get("ARBITER_SCREENSHOTS", "/tmp/human-gold-shots"))


def test_a_researcher_starts_a_human_gold_experiment_and_reads_the_human_curve(
    live_asgi_server, page, researcher, annotator, tmp_path, monkeypatch
):
    page.set_default_timeout(90_000)  # a shared 2-core machine can be slow to serve
    queue = preference_queue(members=[annotator], name="kindness prompts")
    add_items(queue, preference_items(6, seed=1))
    proxy = _version_with_checkpoint(queue, tmp_path, "proxy")
    policy = ModelConfigFactory(name="tiny policy")
    browser_login(page, live_asgi_server.url, researcher.username)
    page.goto(f"{live_asgi_server.url}/reward-models/experiments/new/")
    page.fill("input[name=name]", "people as gold")
    page.select_option("select[name=policy]", str(policy.pk))
    page.select_option("select[name=queue]", str(queue.pk))
    page.fill("input[name=samples_per_prompt]", "8")
    page.check(f"input[name=proxies][value='{proxy.pk}']")
    page.check("input[name=gold_kind][value=human]")
    page.fill("input[name=human_prompts]", "0")
    with mock.patch("rewards.best_of_n._enqueue") as enqueue:
        page.click("#bon-form button[type=submit]")
        page.wait_for_selector("#bon-form .error, #bon-form [role=alert]")
        assert "Human gold needs a sample of 1 to 6 prompts" in page.text_content("#bon-form")
        assert not BestOfNExperiment.objects.exists() and not enqueue.called
        screenshots_at_both_widths(page, SHOTS, "human-gold-form-refused")

        page.fill("input[name=human_prompts]", "4")
        with page.expect_request(lambda r: r.method == "POST") as sent:
            page.click("#bon-form button[type=submit]")
        page.wait_for_url("**/reward-models/experiments/*/")
    body = sent.value.post_data or ""
    assert 'name="gold_kind"\r\n\r\nhuman' in body and 'name="human_prompts"\r\n\r\n4' in body
    experiment = BestOfNExperiment.objects.get()
    assert experiment.gold is None and experiment.human_prompts == 4
    assert "gold human labels: blind pairs on 4 prompts" in " ".join(
        page.text_content("main").split()
    )

    # The worker's part, in process, with synthetic scorers (proxy = length).
    monkeypatch.setattr("llm.generation.backend_for", lambda config: FakeBackend())
    monkeypatch.setattr(
        "rewards.scoring.version_rewards",
        lambda *, version, pairs: [float(len(text)) for _, text in pairs],
    )
    best_of_n_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DONE, experiment.error
    human = HumanGold.objects.get(experiment=experiment)
    queue_members_set(queue=human.queue, users=[annotator])
    items = human.typed_pairs.items
    # The annotator prefers best-of-n at n = 2 and 4, best-of-1 at n = 8.
    answers = {
        item.external_id: items[item.pk].side if items[item.pk].n < 8
        else ("b" if items[item.pk].side == "a" else "a")
        for item in Item.objects.filter(queue=human.queue)
    }  # fmt: skip
    label_all(human.queue, annotator, answers)

    page.reload()
    page.wait_for_selector("#human-gold-plot")
    section = " ".join(page.text_content("#human-gold").split())
    assert f"n = {len(items)} decisive labels" in section
    assert "Human labels, not a reward model" in section and "Wilson 95 %" in section
    # n = 1 (0.5 by construction) and one dot per n with labels, and a fitted curve.
    assert page.locator("#human-gold-plot circle.dot").count() == 4
    assert len(page.get_attribute("#human-gold-plot polyline.fit", "points").split()) == 41
    assert "the human gold peaks at n ≈" in section
    # Beside it, the proxy's own curve, and no model gold anywhere.
    assert page.locator("#bon-plot .bon-proxy circle.dot").count() == 4  # n = 1, 2, 4, 8
    assert page.locator("#bon-plot .bon-gold").count() == 0
    assert "people are the gold" in page.text_content("#bon-fit")
    screenshots_at_both_widths(page, SHOTS, "human-gold")
