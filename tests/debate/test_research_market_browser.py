"""A person judges a market's transcript on the judging page, in Chromium: what they receive
(the page, every htmx fragment, every websocket frame, the API) carries the kept arguments and
never M's predictions or the discarded candidates. The market runs on fake backends here
(tests/debate/test_research_markets.py's fake_market); test_research_worker… runs the real one."""

from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from celery import current_app

import llm.generation
from debate.models import Debate, Market, MarketCandidate, MarketStep, Verdict
from debate.records import BatchSpec
from debate.research.batches import batch_create, batch_run
from debate.research.markets import MARKET_TASK
from tests.debate.research_factories import BankQuestionFactory, QuestionBankFactory
from tests.debate.test_research_markets import fake_market  # noqa: F401 (a fixture)
from tests.factories import ModelConfigFactory
from tests.helpers import Api, browser_login, screenshots_at_both_widths, threads_run

pytestmark = [pytest.mark.browser]

SHOTS = Path("/tmp/market-shots")


def _predictions(market: Market) -> list[str]:
    """Every way M's numbers could be printed: as a fraction and as a percentage."""
    values = [market.initial_probability_a or 0.0]
    for step in MarketStep.objects.filter(market=market):
        values += [step.probability_before, step.probability_after]
        values += list(step.candidates.values_list("predicted_probability_a", flat=True))
    shown = set()
    for value in values:
        shown |= {f"{value:.3f}", f"{value:.4f}", repr(value), f"{100 * value:.1f}"}
    return sorted(shown)


def _unmistakable(fake_choose):
    """M's numbers made unmistakable: 0.5 + a move + 0.00437 (0.50437, "50.4", …)."""

    def choose(config, chats, options):
        return [
            replace(c, probabilities=(c.probabilities[0] + 0.00437, c.probabilities[1] - 0.00437))
            for c in fake_choose(config, chats, options)
        ]

    return choose


def bytes_received(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Everything textual the page receives from now on: response bodies and websocket frames."""
    received: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: received.append(str(p))))

    def body(response):  # type: ignore[no-untyped-def]
        try:
            if "text" in (response.headers.get("content-type") or ""):
                received.append(response.text())
        except Exception:  # a redirect has no body to read
            pass

    page.on("response", body)
    return received


def test_a_human_judges_a_market_and_never_receives_m_or_the_discarded_candidates(
    live_asgi_server,
    browser,
    annotator,
    researcher,
    fake_market,  # noqa: F811
    monkeypatch,
):
    bank = QuestionBankFactory()
    BankQuestionFactory(bank=bank)
    adv, m = ModelConfigFactory(name="adv"), ModelConfigFactory(name="m")
    spec = BatchSpec(
        protocol="market", debater_a_config_id=adv.pk, market_predictor_config_id=m.pk,
        count=1, rounds=3, market_candidates=4, market_epsilon=0.05,
        human_judge_id=annotator.pk,
    )  # fmt: skip
    monkeypatch.setattr(llm.generation, "choose", _unmistakable(llm.generation.choose))
    batch = batch_create(name="human market", bank=bank, spec=spec, created_by=researcher)
    batch_run(batch_id=batch.pk)
    debate = Debate.objects.get(batch=batch)
    market = Market.objects.get(debate=debate)
    assert debate.status == "awaiting_judge" and debate.judge == annotator
    kept = list(MarketCandidate.objects.filter(step__market=market, kept=True)
                .values_list("text", flat=True))  # fmt: skip
    discarded = list(MarketCandidate.objects.filter(step__market=market, kept=False)
                     .values_list("text", flat=True))  # fmt: skip
    assert len(kept) == 3 and len(discarded) == 9
    secrets = discarded + _predictions(market) + ["logprobs", "predictor", "p₀"]

    url = live_asgi_server.url
    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    page.set_default_timeout(20_000)
    received = bytes_received(page)
    sent: list[dict[str, list[str]]] = []
    page.on("request", lambda r: sent.append(parse_qs(r.post_data or ""))
            if r.method == "POST" and f"/debates/{debate.pk}/" in r.url else None)  # fmt: skip
    browser_login(page, url, "annotator1")
    page.goto(f"{url}/debates/{debate.pk}/")
    page.wait_for_selector("#judge-panel [name=probability_a]")
    page.wait_for_timeout(500)
    speeches = page.locator("#transcript .speech").all_inner_texts()
    assert len(speeches) == 3
    for text, speech in zip(kept, speeches, strict=True):
        assert text in speech
    assert "Argument 1" in speeches[0] and "A market" in page.content()
    screenshots_at_both_widths(page, SHOTS, "market-judge")

    page.fill("#judge-panel [name=probability_a]", "35")
    page.fill("#judge-panel [name=rationale]", "The arguments for B quoted the story.")
    page.click("text=End and judge")
    page.wait_for_selector("#reveal")
    page.wait_for_timeout(300)
    assert sent[-1]["probability_a"] == ["35"] and sent[-1]["action"] == ["end"]
    verdict = Verdict.objects.get(debate=debate, kind="human")
    assert verdict.probability_a == 35 and verdict.judge_name == "annotator1"
    screenshots_at_both_widths(page, SHOTS, "market-judged")

    # The judge's API: researchers only, so the debate record (with its market) is refused.
    # (In a thread: Playwright keeps an event loop running in this one.)
    refused = []

    def ask(_: int) -> None:
        api = Api(annotator)
        refused.extend([api.get(f"/debates/{debate.pk}"), api.get("/debates/analytics/")])

    threads_run(ask, 1)
    assert {r.status_code for r in refused} == {403}
    received += [r.content.decode() for r in refused]

    everything = "\n".join(received)
    assert received and all(text in everything for text in kept)
    leaks = [secret for secret in secrets if secret in everything]
    assert leaks == [], f"the judge received {leaks}"


def test_a_market_launched_on_its_own_is_judged_by_a_person_who_never_receives_m(
    live_asgi_server,
    browser,
    annotator,
    researcher,
    fake_market,  # noqa: F811
    monkeypatch,
):
    """Not a batch: a researcher launches one market from the New debate form, the judge's
    prior starts it, a worker's run (market_run, here in a thread) speaks its steps, and the
    judge ends it on the judging page, receiving kept arguments only."""
    adv, m = ModelConfigFactory(name="adv"), ModelConfigFactory(name="m")
    monkeypatch.setattr(llm.generation, "choose", _unmistakable(llm.generation.choose))
    # The worker's run is this test's thread below: the task is recorded, not delivered (the
    # session's Celery worker, if an earlier test started it, would claim the market first).
    sent_tasks: list[int] = []
    monkeypatch.setattr(current_app.tasks[MARKET_TASK], "delay", sent_tasks.append)
    url = live_asgi_server.url
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    sent: list[dict[str, list[str]]] = []
    page.on("request", lambda r: sent.append(parse_qs(r.post_data or ""))
            if r.method == "POST" and r.url.endswith("/debates/new/") else None)  # fmt: skip
    browser_login(page, url, "researcher")
    page.goto(f"{url}/debates/new/")
    page.fill("[name=question]", "Who took the ledger?")
    page.fill("[name=answer_a]", "the clerk")
    page.fill("[name=answer_b]", "the captain")
    page.select_option("[name=correct_side]", "a")
    page.fill("[name=passage]", "The clerk took the ledger. The captain was at sea.")
    page.select_option("[name=protocol]", "market")
    page.fill("[name=max_rounds]", "3")
    page.select_option("[name=debater_a_config]", str(adv.pk))
    page.select_option("[name=judge]", str(annotator.pk))
    page.fill("[name=market_candidates]", "3")
    screenshots_at_both_widths(page, SHOTS, "market-new-missing-m")
    page.click("text=Create debate")
    # No M: the form says so, and nothing is created.
    page.wait_for_selector("text=A market needs M")
    assert not Debate.objects.exists()
    page.select_option("[name=market_predictor_config]", str(m.pk))
    page.click("text=Create debate")
    page.wait_for_url(lambda u: "/debates/new/" not in u)
    assert sent[-1]["protocol"] == ["market"] and sent[-1]["market_candidates"] == ["3"]
    assert sent[-1]["market_predictor_config"] == [str(m.pk)]
    debate = Debate.objects.get()
    market = Market.objects.get(debate=debate)
    assert (debate.protocol, debate.batch, debate.max_rounds) == ("market", None, 3)
    assert (market.candidates, market.epsilon, market.patience) == (3, 0.05, 2)
    assert market.predictor_config == m and debate.debater_a_config == adv
    context.close()

    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    received = bytes_received(page)
    browser_login(page, url, "annotator1")
    page.goto(f"{url}/debates/{debate.pk}/")
    page.fill("#judge-panel [name=probability_a]", "50")
    page.click("#judge-panel button[type=submit]")
    page.wait_for_selector("#transcript .judge-turn.prior")
    debate.refresh_from_db()
    assert debate.status == "generating" and sent_tasks == [debate.pk]

    def run(_: int) -> None:
        from debate.research.markets import market_run

        market_run(debate_id=debate.pk)
        market_run(debate_id=debate.pk)  # a second delivery: claimed already, does nothing

    threads_run(run, 1)
    debate.refresh_from_db()
    market.refresh_from_db()
    assert debate.status == "awaiting_judge" and market.stop_reason
    steps = MarketStep.objects.filter(market=market).count()
    assert 1 <= steps <= 3 and debate.max_rounds == steps
    kept = list(MarketCandidate.objects.filter(step__market=market, kept=True)
                .values_list("text", flat=True))  # fmt: skip
    discarded = list(MarketCandidate.objects.filter(step__market=market, kept=False)
                     .values_list("text", flat=True))  # fmt: skip
    assert len(kept) == steps and len(discarded) == 2 * steps
    # The page learns of the steps over its websocket: the final form appears.
    page.wait_for_selector("#judge-panel [name=rationale]")
    page.wait_for_timeout(300)
    speeches = page.locator("#transcript .speech").all_inner_texts()
    assert len(speeches) == steps
    for text, speech in zip(kept, speeches, strict=True):
        assert text in speech
    screenshots_at_both_widths(page, SHOTS, "market-native-judge")
    page.fill("#judge-panel [name=probability_a]", "70")
    page.fill("#judge-panel [name=rationale]", "Every argument quoted the clerk.")
    page.click("text=End and judge")
    page.wait_for_selector("#reveal")
    verdict = Verdict.objects.get(debate=debate, kind="human")
    assert verdict.probability_a == 70
    page.reload()
    page.wait_for_selector("#reveal")

    everything = "\n".join(received)
    assert all(text in everything for text in kept)
    secrets = discarded + _predictions(market) + ["logprobs", "predictor", "p₀"]
    leaks = [secret for secret in secrets if secret in everything]
    assert leaks == [], f"the judge received {leaks}"
    context.close()
