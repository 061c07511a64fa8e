import pytest

from debate.models import Debate, DebateStatus
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig
from tests.helpers import browser_login, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]

SECRET = "zanzibar-lighthouse-7731"


def test_a_judged_debate_end_to_end(
    live_asgi_server, celery_worker_process, browser, researcher, annotator
):
    url = live_asgi_server.url
    ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).update(temperature=0, max_new_tokens=40)

    # The researcher sets up a debate on the bundled model.
    researcher_page = browser.new_context().new_page()
    browser_login(researcher_page, url, "researcher")
    researcher_page.click("nav >> text=Debates")
    researcher_page.click("text=New debate")
    researcher_page.fill("[name=question]", "What colour is the keeper's door?")
    researcher_page.fill("[name=answer_a]", "Green")
    researcher_page.fill("[name=answer_b]", "Red")
    researcher_page.select_option("[name=correct_side]", "a")
    researcher_page.fill("[name=passage]", f"The keeper painted his door green. {SECRET}")
    researcher_page.fill("[name=max_rounds]", "2")
    researcher_page.fill("[name=speech_char_limit]", "300")
    researcher_page.fill("[name=quote_char_limit]", "100")
    researcher_page.select_option("[name=debater_a_config]", label=BUNDLED_CONFIG_NAME)
    researcher_page.select_option("[name=judge]", label="annotator1")
    researcher_page.click("text=Create debate")
    researcher_page.wait_for_url(f"{url}/debates/*/")
    debate = Debate.objects.get()

    # The annotator judges it, watching what reaches the browser over the websocket.
    page = browser.new_context().new_page()
    page.set_default_timeout(300_000)  # generous: CI machines can be busy
    frames: list[str] = []
    page.on(
        "websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload)))
    )
    browser_login(page, url, "annotator1")
    page.click("nav >> text=Judge")
    page.click("text=What colour is the keeper's door?")
    page.fill("#judge-panel [name=probability_a]", "50")
    page.click("text=Start the debate")

    page.wait_for_selector(".speech-text.streaming")
    lengths: list[int] = []
    # One atomic read in the page: the socket replaces these elements while we look.
    first_speech_state = """() => {
        const text = document.querySelector(".speech .speech-text");
        if (!text) return ["none", 0];
        const state = text.classList.contains("streaming") ? "streaming" : "done";
        return [state, text.textContent.length];
    }"""

    def first_speech_done() -> bool:
        state, length = page.evaluate(first_speech_state)
        if state == "streaming" and length and (not lengths or lengths[-1] != length):
            lengths.append(length)
        return state == "done"

    wait_for(first_speech_done, timeout=300, interval=0.05, what="the first speech")
    assert len(lengths) >= 2, f"speech text did not grow while streaming: {lengths}"

    page.wait_for_selector("text=After round 1")
    page.fill("#judge-panel [name=message]", "Debater B, which colour is the shed?")
    page.click("text=Continue to round 2")
    page.wait_for_selector("text=After round 2")
    assert "Correct answer" not in page.content() and SECRET not in page.content()
    page.fill("#judge-panel [name=probability_a]", "70")
    assert page.input_value("#judge-panel [name=probability_b]") == "30"
    page.fill("#judge-panel [name=rationale]", "A's quote checked out.")
    page.click("text=End and judge")
    page.wait_for_selector("text=Correct answer")

    debate.refresh_from_db()
    assert debate.status == DebateStatus.JUDGED
    assert (debate.judgment.probability_a, debate.judgment.rationale) == (
        70,
        "A's quote checked out.",
    )
    assert "Debater B, which colour is the shed?" in page.inner_text("#transcript")
    # The POST's own response shows the answer first; the socket's snapshot follows it.
    wait_for(lambda: any("Correct answer" in frame for frame in frames), timeout=60, interval=0.05,
             what="the judgment to reach the browser over the websocket")  # fmt: skip
    revealing = [i for i, frame in enumerate(frames) if "Correct answer" in frame]
    before = frames[: revealing[0]]
    assert not any(SECRET in frame or "Correct answer" in frame for frame in before)
    # With the judgment, the passage itself reaches the judge.
    assert any(SECRET in frame for frame in frames[revealing[0] :])
