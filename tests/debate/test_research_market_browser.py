"""A person judges a market's transcript on the judging page, in Chromium: what they receive
(the page, every htmx fragment, every websocket frame, the API) carries the kept arguments and
never M's predictions or the discarded candidates. The market runs on fake backends here
(tests/debate/test_research_markets.py's fake_market); test_research_worker… runs the real one."""

from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs

import pytest

import llm.generation
from debate.models import Debate, Market, MarketCandidate, MarketStep, Verdict
from debate.records import BatchSpec
from debate.research.batches import batch_create, batch_run
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
    # M's numbers made unmistakable: 0.5 + a move + 0.00437 (0.50437, "50.4", …).
    fake_choose = llm.generation.choose

    def choose(config, chats, options):
        return [
            replace(c, probabilities=(c.probabilities[0] + 0.00437, c.probabilities[1] - 0.00437))
            for c in fake_choose(config, chats, options)
        ]

    monkeypatch.setattr(llm.generation, "choose", choose)
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
    received: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: received.append(str(p))))

    def body(response):
        try:
            if "text" in (response.headers.get("content-type") or ""):
                received.append(response.text())
        except Exception:  # a redirect has no body to read
            pass

    page.on("response", body)
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
