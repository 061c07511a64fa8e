"""In Chromium: the reward-model judge's block on a line's page at 1366 and 390 px, its
figures beside people's, and a choice refused with its reason (what the form sends, too)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from amplification.models import Iteration, IterationLine, IterationPair, JudgeStatus
from annotations.kinds import PairwisePayload
from annotations.models import Item
from annotations.services import NewItem, queue_items_create
from tests.annotations.factories import make_queue
from tests.factories import ModelConfigFactory
from tests.helpers import browser_login, screenshots_at_both_widths
from tests.rewards.factories import active_version, preference_queue, reward_model_for

pytestmark = [pytest.mark.browser]
SHOTS = Path(os.environ.get("ARBITER_SCREENSHOTS", "/tmp/iteration-shots"))
QUESTIONS = ["Why do rivers flood in spring?", "How do bees make honey?", "Why is the sea salty?"]
# P(first wins) per question, for each comparison (first, second role).
READINGS = {
    "amplified-direct": ("amplified", "direct", [0.81, 0.67, 0.58]),
    "distilled-amplified": ("distilled", "amplified", [0.44, 0.52, 0.31]),
    "distilled-direct": ("distilled", "direct", [0.73, 0.39, 0.61]),
}


def scored_line(researcher: Any, annotator: Any) -> tuple[IterationLine, Any, Any]:
    base: Any = ModelConfigFactory(name="SmolLM2 base")
    line = IterationLine.objects.create(name="rivers and bees", base=base, held_out=QUESTIONS,
                                        created_by=researcher)  # fmt: skip
    iteration = Iteration.objects.create(line=line, number=1, helper=base)
    queue = make_queue(members=[annotator], kind="pairwise", name="iteration pairs")
    judge = reward_model_for(preference_queue(members=[annotator]), name="Kindness <MiniLM>")
    version = active_version(judge, number=4)
    idle = reward_model_for(preference_queue(members=[annotator]), name="Untrained judge")
    for comparison, (first, second, readings) in READINGS.items():
        for n, (question, p_first) in enumerate(zip(QUESTIONS, readings, strict=True)):
            a_role = first if n % 2 else second
            payload = PairwisePayload(prompt=question, response_a=f"{a_role} answer",
                                      response_b="the other answer")  # fmt: skip
            external_id = f"{comparison}-{n}"
            queue_items_create(queue=queue, items=[NewItem(payload=payload,
                                                           external_id=external_id)])  # fmt: skip
            IterationPair.objects.create(
                iteration=iteration, question=question, comparison=comparison, a_role=a_role,
                item=Item.objects.get(queue=queue, external_id=external_id),
                judge_version=version, judge_p_first=p_first,
            )  # fmt: skip
    Iteration.objects.filter(pk=iteration.pk).update(reward_model=judge,
                                                      judge_status=JudgeStatus.DONE)  # fmt: skip
    return line, judge, idle


def test_the_judge_block_at_both_widths_and_a_refused_choice(
    live_asgi_server: Any, page: Any, researcher: Any, annotator: Any
) -> None:
    line, judge, idle = scored_line(researcher, annotator)
    url = f"{live_asgi_server.url}/trees/iterations/{line.pk}/"
    browser_login(page, live_asgi_server.url, researcher.username)
    page.goto(url)
    row = page.locator('#iteration-1-wins tr[data-comparison="amplified-direct"] td')
    assert [row.nth(i).inner_text() for i in range(5, 8)] == ["100 %", "44–100 %", "3"]
    block = page.locator("#iteration-1-judge")
    text = block.inner_text()
    assert "Scored by Kindness <MiniLM> v4: 9 of 9 pairs." in text
    assert "σ(r_first − r_second)" in text and "Wilson 95 % interval" in text
    assert "Reward model v4: first side wins" in page.inner_text("#iteration-1-wins")
    block.scroll_into_view_if_needed()
    screenshots_at_both_widths(page, SHOTS, "iteration-judge")

    # A reward model with no active version: refused with its reason, nothing sent on.
    page.select_option("#iteration-1-judge select", label="Untrained judge (no active version)")
    with page.expect_request(lambda r: r.method == "POST" and "/judge/" in r.url) as sent:
        page.click("#iteration-1-judge button[type=submit]")
    assert f"reward_model={idle.pk}" in (sent.value.post_data or "")
    alert = page.locator("#iteration-1-error")
    assert "Untrained judge has no active version" in alert.inner_text()
    screenshots_at_both_widths(page, SHOTS, "iteration-judge-refused")
    assert Iteration.objects.get(line=line).reward_model_id == judge.pk
