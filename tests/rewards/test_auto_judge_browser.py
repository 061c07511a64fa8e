"""In Chromium: the researcher's debate page shows the automatic judge at desktop and phone
widths; the judge's page never does."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from annotations.kinds import QueueKind
from rewards.models import DebateScore, RewardModel
from rewards.services import reward_model_save
from tests.annotations.factories import make_queue
from tests.helpers import browser_login
from tests.rewards.factories import active_version, over_debate

pytestmark = [pytest.mark.browser]
SHOTS = Path(os.environ.get("ARBITER_SHOTS_DIR", "/tmp/rewards"))


def test_the_auto_judge_block_at_1366_and_390(live_asgi_server, page, researcher, annotator):
    queue = make_queue(members=[annotator], kind=QueueKind.DEBATE_JUDGMENT, name="judged debates")
    reward_model = reward_model_save(
        reward_model=RewardModel(name="Debate judgments (MiniLM)"), queues=[queue], user=None
    )
    version = active_version(reward_model, number=3)
    debate = over_debate(
        judge=annotator,
        question="Why did the keeper paint the lighthouse door green every spring?",
        answer_a="So that boats could see the door through the fog",
        answer_b="Because green paint resists the salt wind",
    )
    p_a = 1 / (1 + math.exp(-(0.734 + 0.281)))
    DebateScore.objects.create(version=version, debate_id=debate.pk, reward_a=0.734,
                               reward_b=-0.281, probability_a=p_a, in_labels="train",
                               correct_side="a")  # fmt: skip
    # Seven debates outside its training labels, five read right.
    for n, p in enumerate([0.8, 0.7, 0.9, 0.6, 0.55, 0.3, 0.4]):
        DebateScore.objects.create(version=version, debate_id=10_000 + n, reward_a=0,
                                   reward_b=0, probability_a=p, in_labels="none",
                                   correct_side="a")  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    url = f"{live_asgi_server.url}/debates/{debate.pk}/"

    browser_login(page, live_asgi_server.url, researcher.username)
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url)
        block = page.locator("#auto-judge")
        assert block.is_visible()
        assert "P(A correct) 73% · B 27%" in block.inner_text()
        assert "Leans to the correct answer (A)." in block.inner_text()
        assert "In sample: this debate's question and answers are among the labels v3" in (
            block.inner_text()
        )
        accuracy = page.inner_text("#auto-judge-accuracy")
        assert "71 % (5 of n = 7 debates with a known correct answer; 95 % CI 36–92 %" in accuracy
        assert "1 debate in its training labels left out" in accuracy
        box = block.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        bar = page.evaluate(
            "getComputedStyle(document.querySelector('#auto-judge .progress > span')).width"
        )
        assert float(bar.removesuffix("px")) > 0
        block.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"auto-judge-researcher-{width}.png"), full_page=True)

    page.context.clear_cookies()
    browser_login(page, live_asgi_server.url, annotator.username)
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto(url)
    assert page.locator("#auto-judge").count() == 0
    assert "P(A correct)" not in page.content()
    page.screenshot(path=str(SHOTS / "auto-judge-judge-390.png"), full_page=True)
