"""A market batch on the bundled model with a real Celery worker: M's probabilities through
the backend's option choice, Adv's candidates batched, the LLM judge, the analytics row."""

import time
from pathlib import Path

import pytest

from debate.models import (
    BatchStatus,
    Debate,
    DebateBatch,
    DebateStatus,
    Market,
    MarketCandidate,
    Verdict,
    VerdictKind,
)
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig
from tests.debate.research_factories import BankQuestionFactory, QuestionBankFactory
from tests.helpers import browser_login, screenshots_at_both_widths

pytestmark = [pytest.mark.browser]

SHOTS = Path("/tmp/market-shots")


def _judged_elsewhere(question, protocol: str, p_a: int) -> None:
    """A debate or consultancy on the same bank question, as an earlier batch left it."""
    debate = Debate.objects.create(
        question=question.question, answer_a=question.options[0], answer_b=question.options[1],
        correct_side="a", passage=question.passage, protocol=protocol,
        consultant_side="a" if protocol == "consultancy" else "", bank_question=question,
        status=DebateStatus.FINISHED,
    )  # fmt: skip
    Verdict.objects.create(debate=debate, kind=VerdictKind.LLM, judge_name="earlier judge",
                           probability_a=p_a)  # fmt: skip


@pytest.mark.worker
def test_a_market_batch_runs_on_the_bundled_model_and_shows_beside_debate_and_consultancy(
    live_asgi_server, celery_worker_process, page, researcher
):
    ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).update(temperature=0.7)
    bank = QuestionBankFactory(name="market questions")
    questions = BankQuestionFactory.create_batch(2, bank=bank)
    for question in questions:
        _judged_elsewhere(question, "debate", 70)
        _judged_elsewhere(question, "consultancy", 40)

    url = live_asgi_server.url
    browser_login(page, url, "researcher")
    page.goto(f"{url}/debates/batches/new/")
    page.fill("[name=name]", "smoke market")
    page.select_option("[name=bank]", label="market questions")
    page.fill("[name=count]", "2")
    page.select_option("[name=protocol]", "market")
    page.fill("[name=rounds]", "2")
    page.fill("[name=max_new_tokens]", "6")
    page.fill("[name=judge_max_new_tokens]", "6")
    page.select_option("[name=debater_a_config]", label=BUNDLED_CONFIG_NAME)
    page.select_option("[name=market_predictor_config]", label=BUNDLED_CONFIG_NAME)
    page.fill("[name=market_candidates]", "2")
    page.select_option("[name=llm_judge_config]", label=BUNDLED_CONFIG_NAME)
    with page.expect_request(lambda r: r.method == "POST") as posted:
        page.click("text=Start the batch")
    assert "protocol=market" in posted.value.post_data
    assert "market_candidates=2" in posted.value.post_data
    page.wait_for_url("**/debates/batches/*/")
    batch = DebateBatch.objects.get()
    deadline = time.monotonic() + 900
    while DebateBatch.objects.get(pk=batch.pk).status not in (BatchStatus.DONE, "failed"):
        assert time.monotonic() < deadline, "the market batch did not finish"
        time.sleep(0.5)
    batch.refresh_from_db()
    assert batch.status == BatchStatus.DONE, batch.error
    for market in Market.objects.filter(debate__batch=batch):
        assert market.initial_probability_a is not None and market.initial_method
        steps = list(market.steps.all())
        assert 1 <= len(steps) <= 2 and market.stop_reason in ("converged", "step_limit")
        for step in steps:
            assert step.candidates.count() == 2 and step.speech is not None
            assert 0 <= step.probability_after <= 1
    assert MarketCandidate.objects.filter(kept=True).count() == sum(
        m.steps.count() for m in Market.objects.all()
    )
    assert Verdict.objects.filter(kind="llm", debate__batch=batch).count() == 2
    page.reload()
    page.wait_for_selector("#batch-markets")
    screenshots_at_both_widths(page, SHOTS, "market-batch")

    # Every verdict (the batch page's Analytics link filters to the batch alone).
    page.goto(f"{url}/debates/analytics/")
    page.wait_for_selector("#market-protocols")
    rows = page.locator("#market-protocols tbody tr").all_inner_texts()
    names = [row.split("\t")[0] for row in rows]
    assert names == [
        "Market: M's first guess p₀ (the deployed answer)",
        "Debate: the judge's final answer",
        "Consultancy: the judge's final answer",
        "Market making: the judge's final answer",
    ]
    assert page.locator('#accuracy tr[data-group="AI market"] .n').inner_text() == "2"
    assert page.locator("#market-steps tbody tr").count() >= 2
    screenshots_at_both_widths(page, SHOTS, "market-analytics")
