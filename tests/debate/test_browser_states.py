"""Speech cards in every state a worker records, as a judge and an observer see them in
Chromium at desktop and phone widths (screenshots: $ARBITER_SCREENSHOTS, if set)."""

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from debate.events import debate_changed
from debate.models import DebateStatus, Speech, SpeechCandidate, SpeechStatus
from tests.factories import DebateFactory
from tests.helpers import browser_login

pytestmark = [pytest.mark.browser]

SHOTS = os.environ.get("ARBITER_SCREENSHOTS", "")
LOSER = "A candidate nobody kept: the door was blue."


def _debate_in_every_state(judge):
    debate = DebateFactory(judge=judge, max_rounds=3, best_of_n=3, current_round=3,
                           status=DebateStatus.GENERATING)  # fmt: skip
    now = timezone.now()
    done = {"status": SpeechStatus.DONE, "started_at": now - timedelta(seconds=40),
            "generating_at": now - timedelta(seconds=38), "finished_at": now}  # fmt: skip
    cut = Speech.objects.create(
        debate=debate, round=1, side="a", text="The door is green, as the keeper", **done,
        finish_reason="length", completion_tokens=96,
    )  # fmt: skip
    Speech.objects.create(debate=debate, round=1, side="b", text="Red, surely.", **done,
                          finish_reason="stop", completion_tokens=5)  # fmt: skip
    SpeechCandidate.objects.bulk_create([
        SpeechCandidate(speech=cut, index=0, text=LOSER, reward=-0.4, finish_reason="stop"),
        SpeechCandidate(speech=cut, index=1, text=cut.text, reward=1.2, chosen=True,
                        finish_reason="length", completion_tokens=96),
        SpeechCandidate(speech=cut, index=2, text="Green <b>paint</b>.", reward=0.3),
    ])  # fmt: skip
    Speech.objects.create(
        debate=debate, round=2, side="a", status=SpeechStatus.STREAMING, text="Green, because",
        started_at=now - timedelta(seconds=9), generating_at=now - timedelta(seconds=6),
        heartbeat_at=now, completion_tokens=42,
    )  # fmt: skip
    Speech.objects.create(debate=debate, round=2, side="b", status=SpeechStatus.STREAMING,
                          started_at=now - timedelta(seconds=3), heartbeat_at=now)  # fmt: skip
    Speech.objects.create(debate=debate, round=3, side="a")
    return debate


@pytest.mark.parametrize("width", [1366, 390])
def test_each_speech_card_shows_the_state_its_worker_recorded(
    live_asgi_server, browser, annotator, researcher, width
):
    debate = _debate_in_every_state(annotator)
    url = f"{live_asgi_server.url}/debates/{debate.pk}/"
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    browser_login(page, live_asgi_server.url, annotator.username)
    page.goto(url)

    phases = page.locator(".gen-state .gen-phase").all_inner_texts()
    assert phases == ["generating", "loading model", "queued"]
    generating = page.locator(".gen-state[data-phase=generating]").inner_text()
    assert re.search(r"42 tokens · 7\.0 tokens/s", generating), generating
    assert page.locator(".cut-mark").inner_text() == "… [cut at 96-token limit]"
    assert page.locator(".candidates").count() == 0 and LOSER not in page.content()
    # Elapsed time runs on in the page between the worker's messages.
    loading = page.locator(".gen-state[data-phase=loading] .gen-elapsed")
    before = int(loading.inner_text().split()[0])
    # The page ticks once a second; a loaded machine may delay a tick, never stop them.
    page.wait_for_function(
        "([selector, before]) => parseInt(document.querySelector(selector).textContent) >= before",
        arg=[".gen-state[data-phase=loading] .gen-elapsed", before + 2],
        timeout=10_000,
    )
    for card in page.locator("article.speech").all():
        box = card.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width  # nothing clipped
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/speech-states-judge-{width}.png", full_page=True)

    observer = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    browser_login(observer, live_asgi_server.url, researcher.username)
    with observer.expect_websocket() as socket:
        observer.goto(url)
    # The socket's first snapshot re-renders the transcript: open the candidates after it.
    socket.value.wait_for_event("framereceived")
    observer.wait_for_timeout(300)
    summary = observer.locator(".candidates summary")
    assert "Best of 3: candidate 2 kept" in summary.inner_text()
    summary.click()
    assert observer.locator(".candidate-list li.chosen").count() == 1
    assert LOSER in observer.locator(".candidate-list").inner_text()
    assert "Green <b>paint</b>." in observer.locator(".candidate-list").inner_text()  # escaped
    # A live refresh of the transcript leaves the list the researcher opened open (hx-preserve).
    with socket.value.expect_event("framereceived"):
        debate_changed(debate.pk)
    observer.wait_for_timeout(300)
    assert observer.locator(".candidates").evaluate("details => details.open")
    if SHOTS:
        observer.screenshot(path=f"{SHOTS}/speech-states-observer-{width}.png", full_page=True)
    context.close()
