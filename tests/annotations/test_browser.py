import uuid
from urllib.parse import parse_qs

import pytest

from annotations.exports import ExportSpec
from annotations.models import Label
from annotations.services import export_start, label_submit, queue_item_claim
from core.roles import Role
from tests.annotations.factories import labelled_queue, make_queue, pairwise
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


def progress_reads(page, text):
    page.wait_for_selector(f'#progress-text:text-is("{text}")')


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

    assert page.locator("button[data-key=u]").count() == 0  # nothing to undo yet
    for n, key in enumerate(KEYS[:5]):
        press(page, key)
        progress_reads(page, f"{10 - n} left for you · {n + 1} done")
        page.wait_for_selector(f"text=qprompt {n + 1}")
    moved = int(progress.get_attribute("aria-valuenow"))
    assert moved == round(100 * 5 / 11)
    assert page.locator("#work .progress > span").evaluate("el => el.style.width") == f"{moved}%"

    # Undo the fifth label: its item comes back and the bar steps back.
    press(page, "u")
    page.wait_for_selector("text=Label undone.")
    progress_reads(page, "7 left for you · 4 done")
    page.wait_for_selector("text=qprompt 4")
    assert int(progress.get_attribute("aria-valuenow")) == round(100 * 4 / 11)

    for n, key in enumerate(KEYS[4:], start=4):
        press(page, key)
        progress_reads(page, f"{10 - n} left for you · {n + 1} done")
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
    progress_reads(page, "1 left for you · 1 done")
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
    progress_reads(page, "1 left for you · 3 done")
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


@pytest.mark.parametrize("width", [1366, 390])
def test_a_queue_finished_by_others_shows_nothing_left_for_you(live_asgi_server, page, width):
    first = UserFactory(username="early", role=Role.ANNOTATOR)
    UserFactory(username="late", role=Role.ANNOTATOR)
    queue = make_queue(members=[first], items=pairwise(29), labels_per_item=1)
    queue.members.add(UserFactory._meta.model.objects.get(username="late"))
    while (lease := queue_item_claim(queue=queue, annotator=first)) is not None:
        label_submit(assignment_id=lease.pk, annotator=first, value={"choice": "a"},
                     time_spent_ms=1000, client_request_id=uuid.uuid4())  # fmt: skip
    page.set_viewport_size({"width": width, "height": 800})
    url = live_asgi_server.url
    sign_in(page, url, "late")
    page.goto(f"{url}/queues/{queue.pk}/label/")
    progress_reads(page, "0 left for you · 0 done")
    page.wait_for_selector("text=Nothing left for you in this queue")
    assert "of 29" not in page.locator("#work").inner_text()
    assert page.locator("button[data-key=u]").count() == 0  # no label of theirs to undo
    page.screenshot(path=f"/tmp/h1/finished-by-others-{width}.png", full_page=True)
    page.goto(f"{url}/queues/")
    page.wait_for_selector("text=0 left for you · 0 done")


@pytest.mark.parametrize("width", [1366, 390])
def test_a_skipped_item_comes_back_at_the_end(live_asgi_server, page, width):
    annotator = UserFactory(username="skipper", role=Role.ANNOTATOR)
    queue = make_queue(members=[annotator], items=pairwise(3), labels_per_item=1)
    page.set_viewport_size({"width": width, "height": 800})
    url = live_asgi_server.url
    sign_in(page, url, "skipper")
    page.goto(f"{url}/queues/{queue.pk}/label/")
    page.wait_for_selector("text=prompt 0")
    press(page, "s")
    page.wait_for_selector("text=Skipped.")
    progress_reads(page, "2 left for you · 0 done · 1 skipped")
    for n, key in enumerate(("1", "2"), start=1):
        page.wait_for_selector(f"text=prompt {n}")
        press(page, key)
    page.wait_for_selector("text=Only the 1 item you skipped is left for you.")
    progress_reads(page, "0 left for you · 2 done · 1 skipped")
    page.screenshot(path=f"/tmp/h1/revisit-skipped-{width}.png", full_page=True)
    press(page, "r")
    page.wait_for_selector("text=prompt 0")
    page.screenshot(path=f"/tmp/h1/skipped-item-back-{width}.png", full_page=True)
    with page.expect_request(lambda request: request.method == "POST") as posted:
        press(page, "t")
    sent = parse_qs(posted.value.post_data)
    assert sent["revisit"] == ["1"] and int(sent["time_ms"][0]) > 0
    page.wait_for_selector("text=Nothing left for you in this queue")
    progress_reads(page, "0 left for you · 3 done")
    labels = Label.objects.filter(annotator=annotator).order_by("item__id")
    assert [label.value["choice"] for label in labels] == ["tie", "a", "b"]


@pytest.mark.parametrize("width", [1366, 390])
def test_the_exports_pages_read_as_words_and_fit_a_phone(live_asgi_server, page, width):
    researcher = UserFactory(username="exporter", role=Role.RESEARCHER)
    queue, _ = labelled_queue()
    job = export_start(user=researcher, spec=ExportSpec(queues=[queue.pk], format="trl"))
    page.set_viewport_size({"width": width, "height": 844})
    url = live_asgi_server.url
    sign_in(page, url, "exporter")
    for path in ("/queues/exports/", f"/queues/exports/{job.pk}/"):
        page.goto(f"{url}{path}")
        name = path.strip("/").replace("/", "-")
        page.screenshot(path=f"/tmp/h1/{name}-{width}.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
    summary = page.locator(".export-summary").inner_text()
    assert "prefs" in summary and "TRL preference pairs (plain text)" in summary
    assert "One row per label" in summary and "trl ·" not in summary
    # A refused export: the form's errors must fit too.
    page.goto(f"{url}/queues/exports/")
    page.fill("input[name=min_agreement]", "7")
    page.click("form.stack button[type=submit]")
    page.wait_for_selector("form.stack [role=alert]")
    page.screenshot(path=f"/tmp/h1/export-refused-{width}.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
