"""Markets in a batch, on fake backends (the real bundled model runs in test_research_worker…)."""

import math
import re
from dataclasses import dataclass

import pytest

import llm.generation
from debate.models import Market, MarketCandidate, MarketStep, Speech, Verdict
from debate.records import BatchSpec
from debate.research import batches
from debate.research.batches import batch_create, batch_run
from llm.backends.base import Completion, Usage
from tests.debate.research_factories import BankQuestionFactory, QuestionBankFactory
from tests.factories import ModelConfigFactory

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class FakeChoice:
    probabilities: tuple[float, ...] | None
    method: str
    option_mass: float | None
    replies: tuple[str, ...] = ()


@pytest.fixture
def fake_market(monkeypatch):
    """Adv writes "The answer is <answer> because reason-<n>" (n counts up, so every
    candidate is distinct); M's P(A) is 0.5 + 0.1 per argument for A's answer − 0.05 per
    argument for B's (A's arguments move it most), from the prompt it is sent; the judge
    says 70."""
    calls = {"generate": [], "choose": []}
    counter = iter(range(10_000))

    class Fake:
        def __init__(self, config):
            self.config = config

        def generate_batch(self, prompts, *, params):
            calls["generate"].append((self.config.name, list(prompts)))
            replies = []
            for prompt in prompts:
                content = prompt[-1]["content"]
                if "Probability A" in content or "one letter only" in content:
                    replies.append("Probability A: 70")
                    continue
                answer = re.search(r"Argue that the answer is: (.*)", prompt[0]["content"])[1]
                replies.append(f"The answer is {answer} because reason-{next(counter):05d}")
            usage = Usage(prompt_tokens=1, completion_tokens=1, time_to_first_token_s=None,
                          total_s=0.01)  # fmt: skip
            return [Completion(text=t, usage=usage, finish_reason="stop") for t in replies]

    def choose(config, chats, options):
        assert list(options) == ["A", "B"]
        calls["choose"].append((config.name, [list(chat) for chat in chats]))
        out = []
        for chat in chats:
            content = chat[-1]["content"]
            a = re.search(r"Answer A: (.*)", content)[1]
            b = re.search(r"Answer B: (.*)", content)[1]
            said = content.split("Arguments the judge has read:")[1]
            p = 0.5 + 0.1 * said.count(f"answer is {a}") - 0.05 * said.count(f"answer is {b}")
            p = min(0.99, max(0.01, p))
            out.append(FakeChoice((p, 1 - p), "logprobs", 0.9))
        return out

    monkeypatch.setattr(llm.generation, "backend_for", Fake)
    monkeypatch.setattr(llm.generation, "choose", choose, raising=False)
    return calls


def _market_batch(researcher, *, count=2, **spec):
    bank = QuestionBankFactory()
    BankQuestionFactory.create_batch(count, bank=bank)
    adv, m, judge = (
        ModelConfigFactory(name="adv"),
        ModelConfigFactory(name="m"),
        ModelConfigFactory(name="judge"),
    )
    values = {"rounds": 4, "market_candidates": 4, "market_epsilon": 0.05, "market_patience": 2}
    values |= spec
    return batch_create(
        name="market", bank=bank, created_by=researcher, llm_judge_config=judge,
        spec=BatchSpec(protocol="market", debater_a_config_id=adv.pk,
                       market_predictor_config_id=m.pk, count=count, **values),
    )  # fmt: skip


def test_a_market_keeps_the_most_moving_candidate_and_the_judge_reads_only_kept_arguments(
    researcher, fake_market, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        batch = _market_batch(researcher)
    batch_run(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == "done", batch.error
    assert batch.steps_done == batch.steps_total == 2 * 4 + 2

    # Each step: the 2 markets' 4 candidates in one generation, M's 8 predictions in one pass.
    adv_calls = [len(p) for name, p in fake_market["generate"] if name == "adv"]
    assert adv_calls == [8, 8, 8, 8]
    assert [len(c) for _, c in fake_market["choose"]] == [2, 8, 8, 8, 8]

    for market in Market.objects.all():
        assert market.initial_probability_a == pytest.approx(0.5)
        assert market.initial_method == "logprobs"
        steps = list(market.steps.order_by("step"))
        assert [s.step for s in steps] == [1, 2, 3, 4] and market.stop_reason == "step_limit"
        for step in steps:
            candidates = list(step.candidates.order_by("index"))
            assert len(candidates) == 4 and sum(c.kept for c in candidates) == 1
            kept = next(c for c in candidates if c.kept)
            # Candidates arguing A move M by +0.1, B's by −0.05: an A argument is kept.
            assert kept.argued_side == "a"
            assert step.probability_after == pytest.approx(kept.predicted_probability_a)
            assert step.probability_after - step.probability_before == pytest.approx(0.1)
            assert step.speech.text == kept.text and step.speech.round == step.step

    # The LLM judge's bytes: every kept argument, no discarded candidate, no prediction.
    judge_bytes = str([p for name, p in fake_market["generate"] if name == "judge"])
    for candidate in MarketCandidate.objects.all():
        assert (candidate.text in judge_bytes) == candidate.kept
    for p in MarketStep.objects.values_list("probability_before", "probability_after"):
        for value in p:
            assert (
                f"{value:.2f}" not in judge_bytes and f"{round(100 * value)} %" not in judge_bytes
            )
    assert "Argument" in judge_bytes and Speech.objects.count() == 8
    assert Verdict.objects.filter(kind="llm", debate__batch=batch).count() == 2
    for debate in batch.debates.all():
        assert batches.judge_transcript(debate).count("[Round") == 4


def test_a_market_stops_once_m_has_not_moved_more_than_epsilon_for_k_steps(
    researcher, fake_market, django_capture_on_commit_callbacks
):
    # ε = 0.2 > every move (0.1 or 0.05), patience 2: two steps, then it stops, converged.
    with django_capture_on_commit_callbacks(execute=False):
        batch = _market_batch(researcher, count=1, market_epsilon=0.2, market_candidates=1)
    batch_run(batch_id=batch.pk)
    batch.refresh_from_db()
    market = Market.objects.get()
    assert market.stop_reason == "converged" and market.steps.count() == 2
    # One candidate a step, arguing A on odd steps and B on even ones (it alternates).
    sides = list(
        MarketCandidate.objects.order_by("step__step").values_list("argued_side", flat=True)
    )
    assert sides == ["b", "a"]
    assert batch.steps_done == batch.steps_total == 4 + 1


def test_the_analytics_page_shows_the_market_row_and_its_metrics(
    researcher, fake_market, client, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    from debate.research.analytics import Filters, analytics_compute

    with django_capture_on_commit_callbacks(execute=False):
        batch = _market_batch(researcher, count=3)
    batch_run(batch_id=batch.pk)
    stats = analytics_compute(Filters())
    assert [g.name for g in stats.groups] == ["AI market"]
    market = stats.market
    assert market is not None and market.markets == 3 and market.questions == 3
    # p₀ = 0.5 on every market: never more than 50 % on the correct answer.
    assert (market.initial_accuracy.k, market.initial_accuracy.n) == (0, 3)
    assert market.initial_brier == pytest.approx(0.25)
    assert [s.step for s in market.by_step] == [0, 1, 2, 3, 4]
    # The judge says 70 % A: M's cross-entropy falls as its P(A) climbs 0.5 → 0.9 toward it.
    entropies = [s.cross_entropy.mean for s in market.by_step]
    assert entropies[0] == pytest.approx(-(0.7 * math.log(0.5) + 0.3 * math.log(0.5)))
    assert entropies[1] < entropies[0]
    assert all(s.move.mean == pytest.approx(0.1) for s in market.by_step[1:])
    assert market.steps_to_stop.mean == 4 and market.converged.k == 0
    assert [r.name for r in market.same_questions] == [
        "Market: M's first guess p₀ (the deployed answer)",
        "Market making: the judge's final answer",
    ]
    from tests.helpers import Api

    body = Api(researcher).get("/debates/analytics/?protocol=market").json()
    assert body["market"]["markets"] == 3 and body["market"]["initial_accuracy"]["n"] == 3
    assert [s["step"] for s in body["market"]["by_step"]] == [0, 1, 2, 3, 4]
    assert body["market"]["probability_methods"] == {"logprobs": 3}
    client.force_login(researcher)
    page = client.get(reverse("debate:analytics")).content.decode()
    assert 'id="market-protocols"' in page and "AI market" in page
    assert "logprobs (3)" in page


def test_a_market_exports_in_the_debate_schema_with_its_steps_and_imports_back_the_same(
    researcher, fake_market, django_capture_on_commit_callbacks
):
    import json

    from debate.models import Debate
    from debate.records import DebateRecord
    from debate.research.records import debates_export_lines, records_upsert

    with django_capture_on_commit_callbacks(execute=False):
        batch = _market_batch(researcher, count=1, rounds=2)
    batch_run(batch_id=batch.pk)
    [line] = list(debates_export_lines(Debate.objects.all()))
    record = json.loads(line)
    market = record["market"]
    assert record["setting"] == {"is_human": False, "is_debate": False}
    assert record["consultant"] is None and record["roles"]["Debater A"] == "adv"
    assert (
        market["predictor"] == "m" and market["p_0"] == 0.5 and market["p_0_method"] == "logprobs"
    )
    assert [s["step"] for s in market["steps"]] == [1, 2]
    for step, speech in zip(market["steps"], record["speeches"], strict=True):
        assert len(step["candidates"]) == 4
        assert [c["text"] for c in step["candidates"] if c["kept"]] == [speech["text"]]

    Debate.objects.all().delete()
    records_upsert([DebateRecord.model_validate_json(line)])
    [again] = list(debates_export_lines(Debate.objects.all()))
    assert again == line
    assert Debate.objects.get().protocol == "market"


def test_markets_open_read_only_in_the_django_admin(
    researcher, admin_user, fake_market, django_capture_on_commit_callbacks
):
    from tests.helpers import signed_in

    with django_capture_on_commit_callbacks(execute=False):
        batch = _market_batch(researcher, count=1, rounds=1)
    batch_run(batch_id=batch.pk)
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client = signed_in(admin_user)
    rows = {"market": Market.objects.get(), "marketstep": MarketStep.objects.get(),
            "marketcandidate": MarketCandidate.objects.first()}  # fmt: skip
    for name, row in rows.items():
        assert client.get(f"/admin/debate/{name}/").status_code == 200, name
        assert client.get(f"/admin/debate/{name}/{row.pk}/change/").status_code == 200, name
        # The batch run writes them: no Add.
        assert client.get(f"/admin/debate/{name}/add/").status_code == 403, name


def test_a_market_on_its_own_refuses_bad_settings_and_creates_nothing(researcher, annotator):
    from django.core.exceptions import ValidationError

    from debate.models import Debate
    from debate.research.markets import market_create

    adv, m = ModelConfigFactory(name="adv"), ModelConfigFactory(name="m")

    def attempt(*, adv=adv, judge=annotator, **settings):
        debate = Debate(question="Who took the ledger?", answer_a="the clerk",
                        answer_b="the captain", correct_side="a", max_rounds=3,
                        debater_a_config=adv, judge=judge)  # fmt: skip
        values = {"predictor": m, "epsilon": 0.05, "patience": 2, "candidates": 4} | settings
        return market_create(debate=debate, created_by=researcher, **values)

    for settings, message in [
        ({"predictor": None}, "A market needs M"),
        ({"adv": None}, "model config of Adv"),
        ({"judge": None}, "needs a judge"),
        ({"epsilon": 0.5}, "between 0 and 0.5"),
        ({"epsilon": 0.0}, "between 0 and 0.5"),
        ({"candidates": 0}, "1 to 16 candidates"),
        ({"candidates": 17}, "1 to 16 candidates"),
        ({"patience": 11}, "from 1 to 10"),
    ]:
        with pytest.raises(ValidationError, match=message):
            attempt(**settings)
    assert not Debate.objects.exists() and not Market.objects.exists()

    debate = attempt(candidates=3)
    assert (debate.protocol, debate.status, debate.debater_b_config) == (
        "market", "waiting_for_prior", None
    )  # fmt: skip
    assert Market.objects.get(debate=debate).candidates == 3


# --- a market launched on its own: a dead worker's run resumes, failures are recorded --------


class WorkerKilled(BaseException):
    """What a SIGKILL leaves: the run stops where it is, and no handler of ours runs."""


def _market_on_its_own(researcher, annotator, django_capture_on_commit_callbacks, *, rounds=4):
    """A market launched on its own whose judge has given a prior: generating, its run sent."""
    from debate.models import Debate
    from debate.research.markets import market_create, market_start

    debate = Debate(question="Who took the ledger?", answer_a="the clerk",
                    answer_b="the captain", correct_side="a", max_rounds=rounds,
                    passage="The clerk took the ledger. The captain was at sea.",
                    debater_a_config=ModelConfigFactory(name="adv alone"),
                    judge=annotator)  # fmt: skip
    m = ModelConfigFactory(name="m alone")
    # ε 0.05 < every move (0.1): the market runs to its step limit.
    market_create(debate=debate, predictor=m, epsilon=0.05, patience=2, candidates=2,
                  created_by=researcher)  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        market_start(debate)  # sent to sent_runs, which each caller asks for
    return debate


@pytest.fixture
def sent_runs(monkeypatch):
    """The market tasks sent (debate ids), recorded instead of delivered."""
    from celery import current_app

    from debate.research.markets import MARKET_TASK

    sent: list[int] = []
    monkeypatch.setattr(current_app.tasks[MARKET_TASK], "delay", sent.append)
    return sent


def _dying_after(adv_calls, fake_market, monkeypatch, *, then):
    """Adv's backend runs `then()` instead of its call number adv_calls + 1 (counting from the
    fixture's start), then answers as the fake does."""
    fake = llm.generation.backend_for

    class Dying(fake):
        def generate_batch(self, prompts, *, params):
            if len(fake_market["generate"]) == adv_calls:
                monkeypatch.setattr(llm.generation, "backend_for", fake)
                then()
            return super().generate_batch(prompts, params=params)

    monkeypatch.setattr(llm.generation, "backend_for", Dying)


def _steps(debate):
    return list(
        MarketStep.objects.filter(market__debate=debate)
        .order_by("step")
        .values_list("step", "pk", "speech_id", "speech__text", "probability_after")
    )


def test_a_market_whose_worker_died_mid_run_is_sent_again_and_resumes_after_its_last_step(
    researcher, annotator, fake_market, monkeypatch, sent_runs, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from debate.models import Debate
    from debate.research.markets import MARKET_STALE_AFTER, market_run
    from debate.tasks import markets_requeue_stale_task

    debate = _market_on_its_own(researcher, annotator, django_capture_on_commit_callbacks)
    assert sent_runs == [debate.pk]

    def killed():
        raise WorkerKilled

    # The worker is killed as Adv starts step 3: steps 1 and 2 are stored.
    _dying_after(2, fake_market, monkeypatch, then=killed)
    with pytest.raises(WorkerKilled):
        market_run(debate_id=debate.pk)
    stored = _steps(debate)
    assert [s[0] for s in stored] == [1, 2]
    choose_calls = len(fake_market["choose"])  # p₀, step 1, step 2
    assert choose_calls == 3
    # The broker's redelivery (acks_late) finds the market claimed and does nothing.
    market_run(debate_id=debate.pk)
    assert _steps(debate) == stored and len(fake_market["choose"]) == choose_calls

    assert markets_requeue_stale_task() == 0  # its last heartbeat is recent
    # A batch's market, as silent, is its batch's run to resume (batches_requeue_stale).
    with django_capture_on_commit_callbacks(execute=False):
        batch = _market_batch(researcher, count=1)
    long_ago = timezone.now() - MARKET_STALE_AFTER - timedelta(seconds=1)
    Market.objects.update(claimed_at=long_ago, heartbeat_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert markets_requeue_stale_task() == 1
        assert markets_requeue_stale_task() == 0  # sent once
    assert sent_runs == [debate.pk, debate.pk]
    assert Market.objects.get(debate__batch=batch).claimed_at is not None

    market_run(debate_id=debate.pk)
    debate.refresh_from_db()
    market = Market.objects.get(debate=debate)
    assert (debate.status, debate.max_rounds, market.stop_reason) == (
        "awaiting_judge", 4, "step_limit"
    )  # fmt: skip
    assert market.attempt == 2
    steps = _steps(debate)
    # Steps 1 and 2 are the dead run's, untouched; 3 and 4 follow on, each stored once.
    assert [s[0] for s in steps] == [1, 2, 3, 4] and steps[:2] == stored
    assert Speech.objects.filter(debate=debate).count() == 4
    assert MarketCandidate.objects.filter(step__market=market).count() == 4 * 2
    # M's p₀ was not asked again, and step 3 starts where step 2 ended.
    assert len(fake_market["choose"]) == choose_calls + 2
    assert MarketStep.objects.get(market=market, step=3).probability_before == stored[1][4]
    # Step 3's prompts hold each stored argument once.
    prompt = fake_market["choose"][choose_calls][1][0][-1]["content"]
    assert [prompt.count(text) for _, _, _, text, _ in stored] == [1, 1]
    assert Debate.objects.get(pk=debate.pk).current_round == 4


def test_a_run_given_up_on_while_only_slow_stores_no_step_twice(
    researcher, annotator, fake_market, monkeypatch, sent_runs, django_capture_on_commit_callbacks,
    caplog,
):  # fmt: skip
    from datetime import timedelta

    from django.utils import timezone

    from debate.research.markets import MARKET_STALE_AFTER, market_run, markets_requeue_stale

    debate = _market_on_its_own(researcher, annotator, django_capture_on_commit_callbacks)

    def meanwhile():
        # The first run is slow at step 2: the sweeper gives it up and another run claims the
        # market and finishes it before the first one stores its step 2.
        later = timezone.now() + MARKET_STALE_AFTER + timedelta(seconds=1)
        with django_capture_on_commit_callbacks(execute=False):
            assert markets_requeue_stale(now=later) == 1
        market_run(debate_id=debate.pk)

    _dying_after(1, fake_market, monkeypatch, then=meanwhile)
    market_run(debate_id=debate.pk)
    # The slow run found step 2 stored, kept it and stopped at its next heartbeat: no error.
    assert [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == [
        f"market {Market.objects.get(debate=debate).pk}: attempt 1 was superseded; stopping"
    ]
    market = Market.objects.get(debate=debate)
    assert market.attempt == 2 and market.stop_reason == "step_limit"
    assert [s[0] for s in _steps(debate)] == [1, 2, 3, 4]
    assert Speech.objects.filter(debate=debate).count() == 4
    assert MarketCandidate.objects.filter(step__market=market).count() == 4 * 2


def test_m_failing_records_the_step_failed_with_its_reason_and_retry_resumes_the_market(
    researcher, annotator, fake_market, monkeypatch, sent_runs, client,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    from debate.research.markets import market_run, markets_requeue_stale
    from debate.services import speech_retry
    from llm.backends.base import GenerationTimeoutError

    debate = _market_on_its_own(researcher, annotator, django_capture_on_commit_callbacks)
    fake_choose = llm.generation.choose

    def choose(config, chats, options):
        if len(fake_market["choose"]) == 2:  # p₀ and step 1 went well
            raise GenerationTimeoutError("no answer within the 120 s timeout", config_name="m")
        return fake_choose(config, chats, options)

    monkeypatch.setattr(llm.generation, "choose", choose)
    market_run(debate_id=debate.pk)
    debate.refresh_from_db()
    assert debate.status == "generating" and debate.current_round == 2
    failed = Speech.objects.get(debate=debate, status="failed")
    assert failed.round == 2
    assert failed.error == (
        "M could not score Adv's arguments at step 2: no answer within the 120 s timeout."
    )
    assert [s[0] for s in _steps(debate)] == [1]
    # The judge's page says why, and nothing of M's numbers.
    client.force_login(annotator)
    page = client.get(reverse("debate:detail", kwargs={"pk": debate.pk})).content.decode()
    assert "This speech failed: M could not score Adv&#x27;s arguments at step 2" in page
    # A recorded failure waits for a researcher: the sweeper leaves it, a delivery finds it
    # claimed.
    much_later = timezone.now() + timedelta(days=1)
    assert markets_requeue_stale(now=much_later) == 0
    market_run(debate_id=debate.pk)
    assert Speech.objects.get(pk=failed.pk).status == "failed"

    monkeypatch.setattr(llm.generation, "choose", fake_choose)
    with django_capture_on_commit_callbacks(execute=True):
        assert speech_retry(speech_id=failed.pk).status == "queued"
    assert sent_runs == [debate.pk, debate.pk]
    market_run(debate_id=debate.pk)
    debate.refresh_from_db()
    assert debate.status == "awaiting_judge"
    assert [s[0] for s in _steps(debate)] == [1, 2, 3, 4]
    failed.refresh_from_db()
    assert (failed.status, failed.error) == ("done", "")
    assert MarketStep.objects.get(market__debate=debate, step=2).speech_id == failed.pk
    # Only a failed step is retried: the others are the run's.
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="Only a failed step"):
        speech_retry(speech_id=failed.pk)


@pytest.mark.parametrize("who", ["adv", "m"])
def test_adv_or_m_failing_on_its_own_market_records_a_reason_and_never_an_argument(
    who, researcher, annotator, fake_market, monkeypatch, sent_runs,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    from debate.research.markets import market_run
    from llm.backends.base import GenerationError

    debate = _market_on_its_own(researcher, annotator, django_capture_on_commit_callbacks)

    def fail(*args, **kwargs):
        raise GenerationError("the server refused: 503", config_name=who)

    if who == "adv":
        monkeypatch.setattr(llm.generation.backend_for, "generate_batch", fail)
        reason = "Adv could not write its arguments at step 1: the server refused: 503."
    else:
        monkeypatch.setattr(llm.generation, "choose", fail)
        reason = "M could not make its first prediction: the server refused: 503."
    market_run(debate_id=debate.pk)
    [speech] = Speech.objects.filter(debate=debate)
    assert (speech.status, speech.round, speech.text, speech.error) == ("failed", 1, "", reason)
    assert not MarketStep.objects.exists() and not MarketCandidate.objects.exists()


def test_a_bug_in_a_market_run_is_recorded_without_its_text_instead_of_crashing_forever(
    researcher, annotator, fake_market, monkeypatch, sent_runs, django_capture_on_commit_callbacks
):
    from debate.research import markets

    debate = _market_on_its_own(researcher, annotator, django_capture_on_commit_callbacks)

    def broken(*args, **kwargs):
        raise RuntimeError("column predictor_config_id is broken")

    monkeypatch.setattr(markets, "quotes_verify", broken)
    markets.market_run(debate_id=debate.pk)
    [speech] = Speech.objects.filter(debate=debate)
    assert (speech.status, speech.round) == ("failed", 1)
    # The judge reads it: the kind of error, not its text.
    assert speech.error == (
        "The market's run stopped on an error in Arbiter (RuntimeError); the worker's log has "
        "the details."
    )


@pytest.mark.parametrize(
    ("who", "reason"),
    [
        ("adv", "Adv could not write its arguments at step 1: the server refused: 503."),
        ("m", "M could not score Adv's arguments at step 1: the server refused: 503."),
    ],
)
def test_adv_or_m_failing_in_a_batch_fails_the_batch_with_the_reason(
    who, reason, researcher, fake_market, monkeypatch, django_capture_on_commit_callbacks
):
    from llm.backends.base import GenerationError

    with django_capture_on_commit_callbacks(execute=False):
        batch = _market_batch(researcher, count=2)
    fake_choose = llm.generation.choose

    def fail(*args, **kwargs):
        raise GenerationError("the server refused: 503", config_name=who)

    def choose(config, chats, options):
        if len(fake_market["choose"]) == 1:  # p₀ went well; step 1's predictions fail
            fail()
        return fake_choose(config, chats, options)

    if who == "adv":
        monkeypatch.setattr(llm.generation.backend_for, "generate_batch", fail)
    else:
        monkeypatch.setattr(llm.generation, "choose", choose)
    batch_run(batch_id=batch.pk)
    batch.refresh_from_db()
    assert (batch.status, batch.error) == ("failed", reason)
    # No error message ever became an argument, or a candidate.
    assert not Speech.objects.filter(debate__batch=batch).exists()
    assert not MarketCandidate.objects.exists()
