"""The judge's page in Chromium, without a model: the test speaks for the debaters (writes their
finished speeches and tells the page, as a worker would) and looks at what the judge sees and
what the judge's forms send."""

import os
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from core.streams import stream_send
from debate.events import debate_group_name
from debate.models import Debate, DebateStatus, SpeechStatus
from debate.quotes import quotes_verify
from tests.factories import DebateFactory
from tests.helpers import browser_login, sideways_overflow

pytestmark = [pytest.mark.browser]

SHOTS = Path(os.environ.get("ARBITER_SCREENSHOTS", "/tmp/h2"))
SECRET = "zanzibar-lighthouse-7731"
PASSAGE = (
    "The keeper painted his door green every spring, because the salt wind peeled it by "
    f"autumn. The boat shed beside it stayed red. {SECRET}"
)
SPEECHES = {
    "a": "The passage says he <quote>painted his door green every spring</quote>. Green it is, "
    "and nothing in the story suggests any other colour for the door itself. "
    "See https://example.org/keeper/" + "door" * 20 + " for more.",
    "b": "Red: <quote>the boat shed beside it stayed red</quote>, and the keeper's house "
    "shares one colour. <quote>his door was red</quote> as well.",
}


def round_spoken(debate: Debate) -> None:
    """What a worker does when both speeches of a round are done: store them, hand over to
    the judge, and tell the debate's group."""
    debate.refresh_from_db()
    for speech in debate.speeches.filter(round=debate.current_round):
        text = f"Round {speech.round}. {SPEECHES[speech.side]}"
        quotes = quotes_verify(text, passage=debate.passage, quote_char_limit=300)
        speech.status, speech.text = SpeechStatus.DONE, text
        speech.quotes = [quote.as_json() for quote in quotes]
        speech.save()
    Debate.objects.filter(pk=debate.pk).update(status=DebateStatus.AWAITING_JUDGE)
    stream_send(debate_group_name(debate.pk), {"type": "debate.changed"})


def wait_for(page, condition, *, seconds: float = 20, what: str = "") -> None:
    """Wait while Playwright delivers the page's events (a bare sleep would hold them)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(50)


def shoot(page, name: str) -> None:
    """Screenshots at 1366 and 390 px; at 390 px nothing is wider than the viewport."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    assert sideways_overflow(page) <= 0, f"{name} scrolls sideways at 390 px"
    wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5
                         && !e.closest('.table-scroll, .scroll, .passage'))
            .map(e => e.tagName + '.' + e.className)"""
    )
    assert wide == [], f"{name}: wider than 390 px: {wide}"
    page.set_viewport_size({"width": 1366, "height": 900})


def test_a_judge_carries_beliefs_over_turns_and_sees_the_passage_only_after_judging(
    live_asgi_server, browser, annotator, researcher, enqueued
):
    url = live_asgi_server.url
    debate = DebateFactory(judge=annotator, passage=PASSAGE, max_rounds=2, speech_char_limit=400)
    waiting = DebateFactory(judge=annotator, question="Which way does the lighthouse face?")

    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    page.set_default_timeout(20_000)
    frames: list[str] = []
    page.on(
        "websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload)))
    )
    sent: list[dict[str, list[str]]] = []
    page.on(
        "request",
        lambda request: (
            sent.append(parse_qs(request.post_data or ""))
            if request.method == "POST" and f"/debates/{debate.pk}/" in request.url
            else None
        ),
    )
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: console.append(str(error)))
    browser_login(page, url, "annotator1")
    page.goto(f"{url}/debates/{debate.pk}/")
    page.wait_for_selector("#judge-panel [name=probability_a]")
    wait_for(page, lambda: frames, what="the socket's first snapshot")
    page.fill("#judge-panel [name=probability_a]", "60")
    # Something changes in the debate while the judge types: their numbers stay.
    stream_send(debate_group_name(debate.pk), {"type": "debate.changed"})
    wait_for(page, lambda: len(frames) > 1, what="the socket's next snapshot")
    page.wait_for_timeout(200)  # let htmx process the frame
    assert page.input_value("#judge-panel [name=probability_b]") == "40"
    page.fill("#judge-panel [name=message]", "Both of you: <b>quote</b> the passage.")
    shoot(page, "judge-prior")
    page.click("text=Start the debate")
    page.wait_for_selector("#transcript .judge-turn.prior")
    page.wait_for_timeout(200)
    assert console == [], "the prior's submit logged errors"
    prior = page.inner_text("#transcript .judge-turn.prior")
    assert "A 60% · B 40%" in prior and "Both of you: <b>quote</b> the passage." in prior
    assert sent[-1]["probability_a"] == ["60"] and sent[-1]["probability_b"] == ["40"]
    assert sent[-1]["message"] == ["Both of you: <b>quote</b> the passage."]

    # Round 1 spoken: the form starts at the prior, and sends it untouched.
    round_spoken(debate)
    page.wait_for_selector("text=After round 1")
    assert page.input_value("#judge-panel [name=probability_a]") == "60"
    assert page.input_value("#judge-panel [name=probability_b]") == "40"
    assert page.locator("#beliefs circle.side-a").count() == 1
    shoot(page, "judge-after-round-1")
    page.set_viewport_size({"width": 390, "height": 844})
    # On a phone the judge's buttons are reachable by scrolling down only.
    button = page.locator("#judge-panel button[value=continue]")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("() => scrollX") == 0
    page.fill("#judge-panel [name=message]", "B: where does the story say the door is red? "
              "Not in https://example.org/" + "shed" * 20)  # fmt: skip
    button.click()
    page.wait_for_selector("#transcript .judge-turn >> text=after round 1")
    page.set_viewport_size({"width": 1366, "height": 900})
    assert sent[-1]["probability_a"] == ["60"] and sent[-1]["action"] == ["continue"]

    # Round 2 spoken: the final judgment starts where round 1's turn left off.
    round_spoken(debate)
    page.wait_for_selector("text=After round 2")
    assert page.input_value("#judge-panel [name=probability_a]") == "60"
    page.fill("#judge-panel [name=probability_b]", "25")
    assert page.input_value("#judge-panel [name=probability_a]") == "75"
    turns = page.locator("#transcript .judge-turn").all_inner_texts()
    assert [turn.split("\n")[0] for turn in turns] == [
        "Judge prior A 60% · B 40%",
        "Judge after round 1 A 60% · B 40%",
    ]
    assert "where does the story say the door is red?" in turns[1]
    shoot(page, "judge-mid-debate")
    # Until the judgment, nothing the judge received holds the passage or the answer.
    assert SECRET not in page.content() and page.locator("#reveal").is_hidden()
    assert "The keeper painted" not in page.content()
    assert not any(SECRET in frame or "Correct answer" in frame for frame in frames)

    page.fill("#judge-panel [name=rationale]", "A quoted the door; B's quote was not found.")
    page.click("text=End and judge")
    page.wait_for_selector("#reveal .passage mark.quote.verified")
    page.wait_for_timeout(200)
    assert console == [], "the judgment's submit logged errors"
    assert sent[-1]["probability_a"] == ["75"] and sent[-1]["action"] == ["end"]
    marks = page.locator("#reveal .passage mark.quote.verified").all_inner_texts()
    assert marks == ["painted his door green every spring", "The boat shed beside it stayed red"]
    assert SECRET in page.inner_text("#reveal")
    assert "The passage, now that you have judged" in page.inner_text("#reveal h2")
    assert "Hidden until" not in page.inner_text("#reveal")
    assert "Correct answer: A" in page.inner_text("#judge-panel")
    assert page.locator("#transcript .judge-turn").count() == 3
    assert page.locator("#beliefs circle.side-a").count() == 3
    next_link = page.locator("#judge-panel a >> text=Next debate")
    assert next_link.get_attribute("href") == f"/debates/{waiting.pk}/"
    shoot(page, "judge-after-judging")

    # An observer reads the same debate, in words about the judge.
    observer = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    browser_login(observer, url, "researcher")
    observer.goto(f"{url}/debates/{debate.pk}/")
    panel = observer.inner_text("#judge-panel")
    assert "The judge's final probabilities: A 75% · B 25%" in panel
    assert "Your" not in observer.inner_text("main")
    assert "The judge's probabilities over the debate" in observer.inner_text("#beliefs")
    observer.click(".observer summary")
    assert observer.locator(".observer .passage mark.quote.verified").count() == 2
    shoot(observer, "observer-after-judging")

    next_link.click()
    page.wait_for_selector("text=Which way does the lighthouse face?")
    assert page.input_value("#judge-panel [name=probability_a]") == "50"
