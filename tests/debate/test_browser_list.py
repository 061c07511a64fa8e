"""The debate list and the verdict panel in Chromium, at 1366 and 390 px."""

import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from debate.models import DebateStatus, Judgment
from tests.debate.research_factories import imported_rooms
from tests.factories import DebateFactory
from tests.helpers import browser_login, screenshots_at_both_widths

pytestmark = [pytest.mark.browser]

SHOTS = Path(os.environ.get("ARBITER_SCREENSHOTS", "/tmp/debate-list-shots"))


def shoot(page, name: str) -> None:
    screenshots_at_both_widths(page, SHOTS, name)


def row_ids(page) -> list[int]:
    return [
        int(text) for text in page.locator("table.table tbody tr td:first-child").all_inner_texts()
    ]


def test_the_debate_list_pages_through_631_imported_rooms(live_asgi_server, page, researcher):
    imported_rooms(631)
    DebateFactory(question="A live debate nobody imported")
    sent: list[str] = []
    page.on(
        "request", lambda request: sent.append(request.url) if "/debates/?" in request.url else None
    )
    browser_login(page, live_asgi_server.url, "researcher")
    page.goto(f"{live_asgi_server.url}/debates/")
    assert page.inner_text("#debate-count").startswith("632 debates, 1–50 shown · page 1 of 13")

    # The labelled source box narrows the list to the imported rooms.
    page.get_by_label("Source").select_option("imported")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_selector("#debate-count >> text=631 debates")
    assert parse_qs(urlparse(sent[-1]).query)["source"] == ["imported"]
    assert "A live debate" not in page.inner_text("main")
    shoot(page, "debate-list-imported-page-1")

    seen: list[int] = row_ids(page)
    for number in range(2, 14):
        page.locator("nav.pager a[rel=next]").click()
        page.wait_for_selector(f"#debate-count >> text=page {number} of 13")
        assert parse_qs(urlparse(page.url).query) == {"source": ["imported"], "page": [str(number)]}
        seen += row_ids(page)
    assert len(seen) == len(set(seen)) == 631
    assert len(row_ids(page)) == 31 and page.locator("a[rel=next]").count() == 0
    assert page.inner_text("#debate-count").startswith("631 debates, 601–631 shown · page 13 of 13")
    # Every imported room shows its judge's verdict and score.
    cells = page.locator("table.table tbody tr td:nth-child(8)").all_inner_texts()
    assert len(cells) == 31 and all(cell.strip() for cell in cells)
    shoot(page, "debate-list-imported-page-13")
    page.locator("nav.pager a[rel=prev]").click()
    page.wait_for_selector("#debate-count >> text=page 12 of 13")


def test_the_verdict_panel_says_wrong_for_a_wrong_judge(
    live_asgi_server, browser, annotator, researcher
):
    # An imported room whose judge put 10 % on the correct answer.
    (room,) = imported_rooms(1)
    # A live debate its judge got wrong: 20 % on the correct A.
    debate = DebateFactory(judge=annotator, status=DebateStatus.JUDGED, correct_side="a")
    Judgment.objects.create(debate=debate, judge=annotator, probability_a=20, judge_turns=1,
                            rationale="B sounded surer.", time_spent_s=60)  # fmt: skip

    observer = browser.new_context().new_page()
    browser_login(observer, live_asgi_server.url, "researcher")
    observer.goto(f"{live_asgi_server.url}/debates/{room.pk}/")
    verdict = observer.inner_text("#judge-panel .verdicts li")
    assert "wrong (10% on the correct answer) · score -3.322" in verdict
    assert observer.locator("#judge-panel .verdict-result.wrong").is_visible()
    shoot(observer, "verdict-imported-wrong")

    judge = browser.new_context().new_page()
    browser_login(judge, live_asgi_server.url, "annotator1")
    judge.goto(f"{live_asgi_server.url}/debates/{debate.pk}/")
    panel = judge.inner_text("#judge-panel")
    assert "Correct answer: A · wrong (20% on the correct answer)" in panel
    assert "Judge score: -2.372" in panel  # log2(0.2) − 0.05 × 1
    shoot(judge, "verdict-live-wrong")
