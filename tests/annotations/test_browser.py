from urllib.parse import parse_qs

import pytest

from annotations.models import Label
from core.roles import Role
from tests.annotations.factories import make_queue, pairwise
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.browser

KEYS = ["1", "2", "t", "b", "1", "2", "t", "b", "1", "2"]
VALUES = {"1": "a", "2": "b", "t": "tie", "b": "both_bad"}


def sign_in(page, url, username):
    page.goto(f"{url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/**")


def press(page, key):
    # A #work fresh from the server takes keys once htmx has wired it up (data-ready).
    page.wait_for_selector("#work[data-ready]")
    page.keyboard.press(key)


def test_ten_pairwise_items_with_the_keyboard_alone(live_asgi_server, page):
    annotator = UserFactory(username="keyboarder", role=Role.ANNOTATOR)
    queue = make_queue(
        members=[annotator],
        items=pairwise(10, prefix="q") + pairwise(1, prefix="extra "),
        labels_per_item=1,
    )
    url = live_asgi_server.url
    sign_in(page, url, "keyboarder")
    page.goto(f"{url}/queues/{queue.pk}/label/")
    progress = page.locator("[role=progressbar]")
    assert progress.get_attribute("aria-valuenow") == "0"
    page.wait_for_selector("text=qprompt 0")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    for n, key in enumerate(KEYS[:5]):
        press(page, key)
        page.wait_for_selector(f"text={n + 1} of 11 items labelled")
        page.wait_for_selector(f"text=qprompt {n + 1}")
    moved = int(progress.get_attribute("aria-valuenow"))
    assert moved == round(100 * 5 / 11)
    assert page.locator("#work .progress > span").evaluate("el => el.style.width") == f"{moved}%"

    # Undo the fifth label: its item comes back and the bar steps back.
    press(page, "u")
    page.wait_for_selector("text=Label undone.")
    page.wait_for_selector("text=4 of 11 items labelled")
    page.wait_for_selector("text=qprompt 4")
    assert int(progress.get_attribute("aria-valuenow")) == round(100 * 4 / 11)

    for n, key in enumerate(KEYS[4:], start=4):
        press(page, key)
        page.wait_for_selector(f"text={n + 1} of 11 items labelled")
    assert int(progress.get_attribute("aria-valuenow")) == round(100 * 10 / 11)
    page.wait_for_selector("text=extra prompt 0")

    # Everything went through htmx: not one page load after the first.
    assert navigations == []
    labels = Label.objects.filter(annotator=annotator).order_by("item__id")
    assert [label.value["choice"] for label in labels] == [VALUES[key] for key in KEYS]
    assert all(label.time_spent_ms > 0 for label in labels)


def test_the_page_sends_the_time_the_item_was_on_screen(live_asgi_server, page):
    annotator = UserFactory(username="timer", role=Role.ANNOTATOR)
    queue = make_queue(members=[annotator], items=pairwise(2), labels_per_item=1)
    url = live_asgi_server.url
    sign_in(page, url, "timer")
    page.goto(f"{url}/queues/{queue.pk}/label/")
    page.wait_for_selector("#work[data-ready]")
    page.wait_for_timeout(1500)
    with page.expect_request(lambda request: request.method == "POST") as posted:
        page.keyboard.press("1")
    sent = int(parse_qs(posted.value.post_data)["time_ms"][0])
    # What the test waited, plus the time a loaded machine takes to deliver the key press.
    assert 1500 <= sent <= 2500
    page.wait_for_selector("text=1 of 2 items labelled")
    assert Label.objects.get(annotator=annotator).time_spent_ms == sent


def test_keys_pressed_during_a_submit_are_queued_not_lost(live_asgi_server, page):
    annotator = UserFactory(username="quick", role=Role.ANNOTATOR)
    queue = make_queue(members=[annotator], items=pairwise(4), labels_per_item=1)
    url = live_asgi_server.url
    sign_in(page, url, "quick")
    page.goto(f"{url}/queues/{queue.pk}/label/")
    page.wait_for_selector("#work[data-ready]")
    for key in ("1", "2", "t"):  # within a few milliseconds: the first submit is in flight
        page.keyboard.press(key)
    page.wait_for_selector("text=3 of 4 items labelled")
    labels = Label.objects.filter(annotator=annotator).order_by("item__id")
    assert [label.value["choice"] for label in labels] == ["a", "b", "tie"]
    assert page.locator("#key-queue").inner_text() == ""


def test_a_researcher_previews_a_queue_and_nothing_is_stored(live_asgi_server, page):
    annotator = UserFactory(username="member", role=Role.ANNOTATOR)
    UserFactory(username="looker", role=Role.RESEARCHER)
    queue = make_queue(members=[annotator], items=pairwise(3), labels_per_item=1)
    url = live_asgi_server.url
    sign_in(page, url, "looker")
    page.goto(f"{url}/queues/{queue.pk}/manage/")
    page.click("text=Preview as an annotator")
    page.wait_for_selector("text=prompt 0")
    posts = []
    page.on("request", lambda request: posts.append(request) if request.method != "GET" else None)
    for key in ("1", "2", "t", "s"):
        page.keyboard.press(key)
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("text=prompt 1")
    assert page.locator(".label-keys button:not([disabled])").count() == 0
    assert posts == []
    assert not Label.objects.exists()
