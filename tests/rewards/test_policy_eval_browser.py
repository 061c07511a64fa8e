"""The blind pairwise evaluation of a policy run in Chromium: a researcher opens it and
creates its queue (the request carries the chosen annotator), an annotator labels every pair
with the keyboard alone (each request carries the key pressed), and the researcher reads the
new policy's win rate with its interval. At 1366 and 390 px."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from django.urls import reverse

from annotations.models import Label
from core.stats import Share
from rewards.models import PolicyEval
from tests.helpers import browser_login, screenshots_at_both_widths
from tests.rewards.test_policy import finished_policy_run

pytestmark = [pytest.mark.browser]

SHOTS = Path(os.environ.get("ARBITER_SCREENSHOTS", "/tmp/policy-eval-shots"))
KEYS = {"1": "a", "2": "b"}


def test_a_researcher_opens_an_evaluation_and_an_annotator_labels_it_with_the_keyboard(
    live_asgi_server, browser, page, researcher, annotator
):
    page.set_default_timeout(90_000)  # a shared 2-core machine can be slow to serve
    url = live_asgi_server.url
    run = finished_policy_run(samples=4)
    eval_url = f"{url}{reverse('rewards:policy_eval', kwargs={'run_pk': run.pk})}"

    browser_login(page, url, "researcher")
    page.goto(eval_url)
    page.check(f"input[name=members][value='{annotator.pk}']")
    with page.expect_request(lambda r: r.method == "POST") as sent:
        page.click("button:has-text('Create the evaluation queue')")
    assert parse_qs(sent.value.post_data or "")["members"] == [str(annotator.pk)]
    page.wait_for_selector("#eval-win-rate")
    assert page.inner_text("#eval-win-rate") == "– (n = 0)"
    evaluation = PolicyEval.objects.get(run=run)

    # The annotator, in a browser of their own: four pairs, keys only.
    context = browser.new_context()
    judge = context.new_page()
    judge.set_default_timeout(90_000)
    browser_login(judge, url, annotator.username)
    judge.goto(f"{url}/queues/{evaluation.queue_id}/label/")
    pressed = []
    for done, key in enumerate(["1", "2", "1", "1"], start=1):
        judge.wait_for_selector("#work[data-ready]")
        body = judge.inner_text("#work")
        # Nothing on the judge's screen says which model wrote which response.
        assert "parent" not in body.lower() and run.name not in body
        with judge.expect_request(lambda r: r.method == "POST") as posted:
            judge.keyboard.press(key)
        assert parse_qs(posted.value.post_data or "")["key"] == [key]
        pressed.append(KEYS[key])
        judge.wait_for_selector(f'#progress-text:text-is("{4 - done} left for you · {done} done")')
    context.close()

    labels = {label.item_id: label.value["choice"] for label in Label.objects.filter(
        queue=evaluation.queue_id)}  # fmt: skip
    assert sorted(labels.values()) == sorted(pressed)
    sides = evaluation.typed_sides.new
    wins = sum(choice == sides[item_id] for item_id, choice in labels.items())
    page.reload()
    assert page.inner_text("#eval-win-rate") == Share(wins, 4).text
    assert "Wilson" in page.inner_text("#eval-result")
    screenshots_at_both_widths(page, SHOTS, "policy-eval-result")
