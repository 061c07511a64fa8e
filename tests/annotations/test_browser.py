import uuid
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

from annotations.exports import ExportSpec
from annotations.models import Assignment, Label, Outcome
from annotations.services import export_start, label_submit, queue_item_claim
from core.roles import Role
from tests.annotations.factories import labelled_queue, make_queue, pairwise
from tests.factories import PASSWORD, UserFactory
from tests.helpers import wait_for

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


# --- the next item held ahead -----------------------------------------------------------------
def holds_next_item(page):
    page.wait_for_selector("#work[data-ready] > template.ahead", state="attached")


def submits_sent(page):
    """Every label POST the page sends, as parsed form bodies, in the order sent."""
    sent = []
    page.on(
        "request",
        lambda request: (
            sent.append(parse_qs(request.post_data))
            if request.method == "POST" and "/label/submit/" in request.url
            else None
        ),
    )
    return sent


def test_keys_pressed_quickly_never_lose_a_label(live_asgi_server, page):
    annotator = UserFactory(username="typist", role=Role.ANNOTATOR)
    queue = make_queue(members=[annotator], items=pairwise(8), labels_per_item=1)
    url = live_asgi_server.url
    sign_in(page, url, "typist")
    page.goto(f"{url}/queues/{queue.pk}/label/")
    holds_next_item(page)
    sent = submits_sent(page)
    keys = ["1", "2", "t", "b", "1", "2"]
    for key in keys:  # no wait between them: faster than any round trip
        page.keyboard.press(key)
    progress_reads(page, "2 left for you · 6 done")
    page.wait_for_selector("text=prompt 6")
    # What the server stored: one label per key, in order, on six different items.
    labels = Label.objects.filter(annotator=annotator).order_by("item__id")
    assert [label.value["choice"] for label in labels] == [VALUES[key] for key in keys]
    assert [label.item.payload["prompt"] for label in labels] == [f"prompt {n}" for n in range(6)]
    # What the page sent: each key once, each on its own lease with its own request id.
    assert [body["key"][0] for body in sent] == keys
    assert len({body["assignment"][0] for body in sent}) == 6
    assert len({body["request_id"][0] for body in sent}) == 6
    assert sorted(str(label.client_request_id) for label in labels) == sorted(
        body["request_id"][0] for body in sent
    )
    assert page.locator("#key-queue").inner_text() == ""
    assert page.locator("#label-status").is_hidden()


@pytest.mark.parametrize("width", [1366, 390])
def test_a_lost_lease_is_shown_and_the_page_keeps_its_place(live_asgi_server, page, width):
    annotator = UserFactory(username="slowpoke", role=Role.ANNOTATOR)
    queue = make_queue(members=[annotator], items=pairwise(4), labels_per_item=1)
    page.set_viewport_size({"width": width, "height": 900})
    url = live_asgi_server.url
    sign_in(page, url, "slowpoke")
    page.goto(f"{url}/queues/{queue.pk}/label/")
    holds_next_item(page)
    sent = submits_sent(page)

    def lease(ahead):
        return Assignment.objects.get(annotator=annotator, outcome=Outcome.OPEN, ahead=ahead)

    # The lease on the item held ahead is lost (another tab of theirs reloaded): the server
    # holds the same item again under a new lease, and the page takes that without a word.
    Assignment.objects.filter(pk=lease(True).pk).update(outcome=Outcome.RELEASED)
    page.keyboard.press("1")
    progress_reads(page, "3 left for you · 1 done")
    holds_next_item(page)
    assert "prompt 1" in page.locator("#work > .held").inner_text()
    assert page.locator("#label-status").is_hidden()

    # The hold on the item on screen ends (it timed out): its label is refused, the page says
    # so, and stays on the next item, where the key had already taken the person.
    Assignment.objects.filter(pk=lease(False).pk).update(outcome=Outcome.EXPIRED)
    page.keyboard.press("2")
    page.wait_for_selector("#label-status:has-text('was not stored: Your hold on that item ended')")
    holds_next_item(page)
    assert "prompt 2" in page.locator("#work > .held").inner_text()
    page.screenshot(path=f"/tmp/h1/lost-lease-{width}.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    press(page, "t")
    progress_reads(page, "2 left for you · 2 done")
    page.wait_for_selector("text=prompt 1")  # the lost item came back to them
    labels = Label.objects.filter(annotator=annotator).order_by("item__id")
    assert [(label.item.payload["prompt"], label.value["choice"]) for label in labels] == [
        ("prompt 0", "a"),
        ("prompt 2", "tie"),
    ]
    assert [body["key"][0] for body in sent] == ["1", "2", "t"]


def test_a_page_closed_with_the_next_item_held_gives_it_back(live_asgi_server, page):
    annotator = UserFactory(username="leaver", role=Role.ANNOTATOR)
    other = UserFactory(username="stayer", role=Role.ANNOTATOR)
    queue = make_queue(members=[annotator, other], items=pairwise(3), labels_per_item=1)
    url = live_asgi_server.url
    sign_in(page, url, "leaver")
    page.goto(f"{url}/queues/{queue.pk}/label/")
    holds_next_item(page)
    page.keyboard.press("1")
    progress_reads(page, "2 left for you · 1 done")
    holds_next_item(page)
    ahead = Assignment.objects.get(annotator=annotator, outcome=Outcome.OPEN, ahead=True)
    page.goto(f"{url}/queues/")  # the page goes away (pagehide)
    wait_for(
        lambda: Assignment.objects.get(pk=ahead.pk).outcome == Outcome.RELEASED,
        timeout=10,
        what="the lease held ahead given back",
    )
    # At once another annotator gets that item; the one on screen stays the leaver's until
    # its lease times out; nothing was labelled twice or lost.
    theirs = queue_item_claim(queue=queue, annotator=other)
    assert theirs.item_id == ahead.item_id
    shown = Assignment.objects.get(annotator=annotator, outcome=Outcome.OPEN)
    assert shown.expires_at <= timezone.now() + queue.lease_duration
    assert [label.value["choice"] for label in Label.objects.all()] == ["a"]
