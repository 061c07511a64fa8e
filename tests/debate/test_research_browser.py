import json
import time
from pathlib import Path

import pytest

from debate.models import BatchStatus, Debate, DebateBatch, Verdict
from debate.research.imports import debate_files_import
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig
from tests.debate.research_data import METADATA, ROOMS
from tests.debate.research_factories import BankQuestionFactory, QuestionBankFactory
from tests.helpers import browser_login, screenshots_at_both_widths

pytestmark = [pytest.mark.browser]

SHOTS = Path("/tmp/wt13-shots")
HOSTILE = '<img src=x onerror="window.pwned=1">'


def shoot(page, name: str) -> None:
    screenshots_at_both_widths(page, SHOTS, name)


def test_a_full_sample_room_shows_in_the_viewer_with_its_quotes_highlighted(
    live_asgi_server, page, researcher
):
    room = json.loads(ROOMS[0].read_text())
    for entry in room["rounds"]:
        for kind, body in entry.items():
            if "Speeches" in kind:
                next(iter(body["speeches"].values()))["content"].append({"Text": {"text": HOSTILE}})
                break
    meta = [line for line in METADATA.read_text().splitlines() if f'"{ROOMS[0].stem}"' in line]
    report = debate_files_import(files=[
        ("debates-metadata.jsonl", meta[0].encode()), (ROOMS[0].name, json.dumps(room).encode())
    ])  # fmt: skip
    assert report.errors == []
    debate = Debate.objects.get(room_name=ROOMS[0].stem)
    quotes = sum(len(s.quotes) for s in debate.speeches.all())

    browser_login(page, live_asgi_server.url, "researcher")
    page.goto(f"{live_asgi_server.url}/debates/{debate.pk}/")
    page.wait_for_selector("q.quote.verified")
    assert page.locator("#transcript q.quote.verified").count() == quotes > 0
    first = debate.speeches.all()[0].quotes[0]["text"]
    assert page.locator("#transcript q.quote.verified").first.inner_text() == first
    assert page.get_by_text(HOSTILE).count() >= 1  # shown as text, never run
    assert page.evaluate("() => window.pwned") is None
    assert page.locator(".verdicts").inner_text().count("%") >= 2
    shoot(page, "room")


@pytest.mark.worker
def test_a_batch_with_an_llm_judge_runs_on_the_bundled_model_and_shows_in_analytics(
    live_asgi_server, celery_worker_process, page, researcher
):
    ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).update(temperature=0)
    bank = QuestionBankFactory(name="ferry questions")
    BankQuestionFactory.create_batch(2, bank=bank)

    browser_login(page, live_asgi_server.url, "researcher")
    page.goto(f"{live_asgi_server.url}/debates/batches/new/")
    page.fill("[name=name]", "smoke batch")
    page.select_option("[name=bank]", label="ferry questions")
    page.fill("[name=count]", "2")
    page.fill("[name=rounds]", "1")
    page.fill("[name=max_new_tokens]", "6")
    page.fill("[name=judge_max_new_tokens]", "6")
    page.select_option("[name=debater_a_config]", label=BUNDLED_CONFIG_NAME)
    page.select_option("[name=llm_judge_config]", label=BUNDLED_CONFIG_NAME)
    with page.expect_request(lambda r: r.method == "POST") as posted:
        page.click("text=Start the batch")
    assert "count=2" in posted.value.post_data and "rounds=1" in posted.value.post_data
    page.wait_for_url("**/debates/batches/*/")
    shoot(page, "batch-running")
    batch = DebateBatch.objects.get()
    deadline = time.monotonic() + 600
    while DebateBatch.objects.get(pk=batch.pk).status not in (BatchStatus.DONE, "failed"):
        assert time.monotonic() < deadline, "the batch did not finish"
        time.sleep(0.5)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.DONE, batch.error
    page.wait_for_selector("text=Done")  # the polling progress bar saw it finish
    assert Verdict.objects.filter(kind="llm", debate__batch=batch).count() == 2
    assert all(len(s.text) > 0 for d in batch.debates.all() for s in d.speeches.all())
    shoot(page, "batch-done")

    page.click("main >> text=Analytics")
    row = page.locator(f'#accuracy tr[data-group="LLM judge: {BUNDLED_CONFIG_NAME}"]')
    assert row.locator(".n").inner_text() == "2"
    shoot(page, "analytics-batch")


def test_the_research_pages_fit_a_phone_and_a_laptop(live_asgi_server, page, researcher):
    debate_files_import(files=[(METADATA.name, METADATA.read_bytes())]
                        + [(room.name, room.read_bytes()) for room in ROOMS[:20]])  # fmt: skip
    bank = QuestionBankFactory(name="ferry questions")
    BankQuestionFactory.create_batch(3, bank=bank)
    url = live_asgi_server.url
    browser_login(page, url, "researcher")

    page.goto(f"{url}/research/")
    page.click("main >> text=Analytics")
    page.check("[name=paper_only]")
    page.select_option("[name=judge_kind]", "human")
    with page.expect_request(lambda r: "/debates/analytics/?" in r.url) as sent:
        page.click("text=Apply")
    assert "paper_only=on" in sent.value.url and "judge_kind=human" in sent.value.url
    row = page.locator('#accuracy tr[data-group="Human debate"]')
    assert row.locator(".accuracy").inner_text() == "84 %"
    assert row.locator(".n").inner_text() == "154"
    assert page.locator("svg.chart circle").count() > 4
    shoot(page, "analytics-nyu")

    page.select_option("[name=group_by]", "model")
    page.select_option("[name=judge_kind]", "")
    page.uncheck("[name=paper_only]")
    page.click("text=Apply")
    shoot(page, "analytics-models")

    pages = [("import", "/debates/import/"), ("banks", "/debates/banks/"),
             ("bank", f"/debates/banks/{bank.pk}/"), ("batch-new", "/debates/batches/new/"),
             ("debates", "/debates/")]  # fmt: skip
    for name, path in pages:
        page.goto(f"{url}{path}")
        shoot(page, name)


def test_the_import_page_uploads_counts_debates_and_refuses_too_much(
    live_asgi_server, page, researcher, settings, tmp_path
):
    pail = Path(__file__).parent / "data" / "a-pail-of-air-7.json"
    meta = [line for line in METADATA.read_text().splitlines() if '"a-pail-of-air-7"' in line]
    metadata = tmp_path / "debates-metadata.jsonl"
    metadata.write_text(meta[0] + "\n")
    browser_login(page, live_asgi_server.url, "researcher")
    page.goto(f"{live_asgi_server.url}/debates/import/")
    page.set_input_files("input[name=uploads]", [str(metadata), str(pail)])
    with page.expect_request(lambda r: r.method == "POST") as sent:
        page.get_by_role("button", name="Import").click()
    page.wait_for_selector("#import-report")
    # Chromium does not hand multipart file bodies to Playwright; their length says both went.
    headers = sent.value.all_headers()
    assert headers["content-type"].startswith("multipart/form-data")
    both = pail.stat().st_size + metadata.stat().st_size
    assert both < int(headers["content-length"]) < both + 2_000
    assert page.locator("#import-report h2").inner_text() == "Imported 1 debate"
    assert "1 created, 0 updated" in page.locator("#import-counts").inner_text()
    assert page.locator("#import-report .errors").count() == 0
    shoot(page, "import-report")

    debate = Debate.objects.get(room_name="a-pail-of-air-7")
    page.goto(f"{live_asgi_server.url}/debates/{debate.pk}/")
    clipped = page.locator("#transcript q.quote", has_text=".").last
    assert "was cut there" in (clipped.get_attribute("title") or "")

    settings.DEBATE_IMPORT_MAX_BYTES = 50_000  # the room alone is 58 kB
    page.goto(f"{live_asgi_server.url}/debates/import/")
    page.set_input_files("input[name=uploads]", [str(metadata), str(pail)])
    page.get_by_role("button", name="Import").click()
    error = page.locator("#import-form [role=alert]")
    error.wait_for()
    assert "Import them in parts." in error.inner_text()
    assert page.locator("#import-report").count() == 0
    shoot(page, "import-too-much")
