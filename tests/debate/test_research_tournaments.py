import math

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

import llm.generation
from debate.models import Debate, DebateBatch, SpeechCandidate, Verdict, VerdictKind
from debate.records import BatchSpec
from debate.research.batches import _batch_round, batch_create, batch_run
from debate.research.tournaments import Game, soft_bradley_terry, tournament_compute
from llm.backends.base import Completion, Usage
from tests.debate.research_factories import BankQuestionFactory, QuestionBankFactory
from tests.debate.test_generation import debate_judgment_reward_model
from tests.factories import ModelConfigFactory
from tests.helpers import Api

pytestmark = pytest.mark.django_db


def test_the_soft_bradley_terry_fit_matches_a_hand_computed_table():
    # Strengths 1, 2 and 4 (ratings 1000 + 400·log10(s / 2), their geometric mean being 2):
    # each pair's soft wins are exactly s_i / (s_i + s_j) of 3 games, which the maximum-
    # likelihood fit reproduces, so without the prior the fit must give back those ratings.
    strengths = {1: 1.0, 2: 2.0, 3: 4.0}
    games = [
        Game(question=q, first=i, second=j, p_first=strengths[i] / (strengths[i] + strengths[j]))
        for q in range(3)
        for i in strengths
        for j in strengths
        if i < j
    ]
    ratings, _, _ = soft_bradley_terry(games, [1, 2, 3], samples=0, prior=0.0)
    expected = [1000 + 400 * math.log10(s / 2) for s in strengths.values()]
    assert ratings == pytest.approx(expected, abs=0.01)
    assert expected == pytest.approx([879.59, 1000.0, 1120.41], abs=0.01)

    # Two debaters, 3 of 4 judged wins to the first, with the analytics' prior (0.5 game won
    # and lost each): strengths 3.5 : 1.5, so ratings 1000 ± 200·log10(3.5 / 1.5).
    two = [Game(q, 1, 2, p) for q, p in enumerate([1.0, 1.0, 1.0, 0.0])]
    ratings, low, high = soft_bradley_terry(two, [1, 2], samples=200)
    half = 200 * math.log10(3.5 / 1.5)
    assert ratings == pytest.approx([1000 + half, 1000 - half], abs=0.01)
    # Resampling the four questions: the interval holds the point and is not a point.
    assert low[0] <= ratings[0] <= high[0] and high[0] - low[0] > 10


def test_soft_wins_count_the_judges_probability_not_only_who_won():
    confident = [Game(q, 1, 2, 0.9) for q in range(4)]
    unsure = [Game(q, 1, 2, 0.6) for q in range(4)]
    c, _, _ = soft_bradley_terry(confident, [1, 2], samples=0)
    u, _, _ = soft_bradley_terry(unsure, [1, 2], samples=0)
    assert c[0] - c[1] > u[0] - u[1] > 0


@pytest.fixture
def judged_by_strength(monkeypatch):
    """Debaters named "strong…" persuade the fake judge: P(A) 80 % when A's speeches come
    from a strong config and B's do not, 20 % the other way, else 50 % + 10 if A is right…
    the judge cannot know that: self-play is judged from the transcript's text alone."""
    calls = []

    class Fake:
        def __init__(self, config):
            self.config = config

        def generate_batch(self, prompts, *, params):
            calls.append((self.config.name, len(prompts)))
            replies = []
            for prompt in prompts:
                content = prompt[-1]["content"]
                if "Probability A" in content:
                    a_strong = "Debater A: strong" in content
                    b_strong = "Debater B: strong" in content
                    p = 80 if a_strong and not b_strong else 20 if b_strong and not a_strong else 50
                    replies.append(f"Probability A: {p}")
                else:
                    replies.append(f"{self.config.name} says so")
            usage = Usage(prompt_tokens=1, completion_tokens=1, time_to_first_token_s=None,
                          total_s=0.01)  # fmt: skip
            return [Completion(text=t, usage=usage, finish_reason="stop") for t in replies]

    monkeypatch.setattr(llm.generation, "backend_for", Fake)
    return calls


def test_a_tournament_debates_every_ordered_pair_on_every_question_and_rates_them(
    researcher, judged_by_strength, django_capture_on_commit_callbacks, client
):
    bank = QuestionBankFactory()
    BankQuestionFactory.create_batch(4, bank=bank)
    strong, weak, mid = (ModelConfigFactory(name=n) for n in ("strong one", "weak one", "mid"))
    judge = ModelConfigFactory(name="judge")
    spec = BatchSpec(tournament_config_ids=[strong.pk, weak.pk, mid.pk], count=4, rounds=1)
    with django_capture_on_commit_callbacks(execute=False):
        batch = batch_create(name="t", bank=bank, spec=spec, created_by=researcher,
                             llm_judge_config=judge)  # fmt: skip
    debates = list(Debate.objects.filter(batch=batch))
    assert len(debates) == 4 * 9 and batch.steps_total == 36 * 2 + 36
    # Each ordered pair once per question, its first config on the correct side.
    seen = set()
    for d in debates:
        right, wrong = (
            (d.debater_a_config_id, d.debater_b_config_id)
            if d.correct_side == "a"
            else (d.debater_b_config_id, d.debater_a_config_id)
        )
        seen.add((d.bank_question_id, right, wrong))
    assert len(seen) == 36

    batch_run(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == "done", batch.error
    assert Verdict.objects.filter(debate__batch=batch, kind=VerdictKind.LLM).count() == 36
    result = tournament_compute(batch)
    assert result is not None and result.debates == 36 and result.questions == 4
    by_name = {e.name: e for e in result.entries}
    assert by_name["strong one"].rating > by_name["mid"].rating
    assert by_name["strong one"].games == 4 * 4  # 2 opponents × 2 orders × 4 questions
    for entry in result.entries:
        assert entry.low is not None and entry.low <= entry.rating <= entry.high
        # Self-play: a 50 % verdict counts as wrong; n is the config's 4 self-play debates.
        assert (entry.self_play.k, entry.self_play.n) == (0, 4)
    assert result.trend is not None and result.trend.slope == pytest.approx(0, abs=1e-9)

    # The batch page: the ratings table and Khan et al.'s plot, one point per config.
    client.force_login(researcher)
    page = client.get(reverse("debate:batch", args=[batch.pk])).content.decode()
    assert page.count('class="config-point"') == 3 and 'class="trend"' in page
    assert 'data-config="strong one"' in page and "bootstrap" in page

    # The API: the same figures, and a batch that is not a tournament is a 404.
    api = Api(researcher)
    body = api.get(f"/debates/batches/{batch.pk}/tournament").json()
    assert [e["name"] for e in body["entries"]] == ["strong one", "weak one", "mid"]
    assert body["entries"][0]["rating"] == pytest.approx(by_name["strong one"].rating)
    assert body["entries"][0]["self_play_accuracy"]["n"] == 4 and body["debates"] == 36
    assert api.get("/debates/batches/999999/tournament").status_code == 404


def test_a_tournament_and_bad_specs_through_the_api(researcher, django_capture_on_commit_callbacks):
    bank = QuestionBankFactory()
    BankQuestionFactory.create_batch(2, bank=bank)
    a, b, judge = ModelConfigFactory(), ModelConfigFactory(), ModelConfigFactory()
    api = Api(researcher)

    def post(**spec):
        body = {"name": "t", "bank_id": bank.pk, "llm_judge_config_id": judge.pk,
                "spec": {"count": 2, **spec}}  # fmt: skip
        with django_capture_on_commit_callbacks(execute=False):
            return api.post("/debates/batches/", body)

    for spec, status, message in [
        ({"tournament_config_ids": [a.pk]}, 422, "at least 2"),
        ({"tournament_config_ids": [a.pk, a.pk]}, 400, "each debater config once"),
        ({"protocol": "market", "debater_a_config_id": a.pk}, 400, "A market needs M"),
        ({"protocol": "market", "debater_a_config_id": a.pk, "market_predictor_config_id": b.pk,
          "market_epsilon": 0.7}, 422, "less than 0.5"),
        ({"protocol": "market", "debater_a_config_id": a.pk, "market_predictor_config_id": b.pk,
          "market_candidates": 17}, 422, "less than or equal to 16"),
        ({"tournament_config_ids": [a.pk, a.pk], "tournament_best_of_n": [1, 17]}, 422,
         "less than or equal to 16"),
        ({"tournament_config_ids": [a.pk, a.pk], "tournament_best_of_n": [1, 4]}, 400,
         "needs an active reward model"),
    ]:  # fmt: skip
        response = post(**spec)
        assert response.status_code == status, (spec, response.content)
        assert message in response.content.decode(), response.content
    assert not DebateBatch.objects.exists()
    response = post(tournament_config_ids=[a.pk, b.pk])
    assert response.status_code == 201
    assert len(response.json()["debate_ids"]) == 2 * 4
    assert api.get(f"/debates/batches/{response.json()['id']}/tournament").status_code == 200


def test_bad_tournaments_and_markets_are_refused_and_create_nothing(researcher):
    bank = QuestionBankFactory()
    BankQuestionFactory.create_batch(2, bank=bank)
    a, judge = ModelConfigFactory(), ModelConfigFactory()
    from pydantic import ValidationError as SchemaError

    with pytest.raises(SchemaError, match="at least 2"):
        BatchSpec(tournament_config_ids=[a.pk], count=1)
    with pytest.raises(SchemaError, match="less than 0.5"):
        BatchSpec(protocol="market", debater_a_config_id=a.pk, count=1, market_epsilon=0.5)
    with pytest.raises(SchemaError, match="greater than 0"):
        BatchSpec(protocol="market", debater_a_config_id=a.pk, count=1, market_epsilon=0)
    for n in (0, 17):
        with pytest.raises(SchemaError, match="market_candidates"):
            BatchSpec(protocol="market", debater_a_config_id=a.pk, count=1, market_candidates=n)
        with pytest.raises(SchemaError, match="tournament_best_of_n"):
            BatchSpec(tournament_config_ids=[a.pk, a.pk], tournament_best_of_n=[1, n], count=1)
    refused = {
        "A market needs M": BatchSpec(protocol="market", debater_a_config_id=a.pk, count=1),
        "model config of Adv": BatchSpec(
            protocol="market", market_predictor_config_id=a.pk, count=1
        ),
        "each debater config once": BatchSpec(tournament_config_ids=[a.pk, a.pk], count=1),
        "made of debates": BatchSpec(
            tournament_config_ids=[a.pk, judge.pk], count=1, protocol="consultancy"
        ),
        r"Only 2 questions": BatchSpec(tournament_config_ids=[a.pk, judge.pk], count=3),
        # Best-of-n variants: one n per config, each (config, n) once, and a reward model to
        # choose with (none is active here).
        "one best-of-n per debater config: 2 configs, 3": BatchSpec(
            tournament_config_ids=[a.pk, judge.pk], tournament_best_of_n=[1, 2, 4], count=1
        ),
        rf"config {a.pk} best of 4 appear more than once": BatchSpec(
            tournament_config_ids=[a.pk, a.pk], tournament_best_of_n=[4, 4], count=1
        ),
        "Best-of-n variants are tournament entrants": BatchSpec(
            debater_a_config_id=a.pk, tournament_best_of_n=[1, 4], count=1
        ),
        "needs an active reward model": BatchSpec(
            tournament_config_ids=[a.pk, a.pk], tournament_best_of_n=[1, 4], count=1
        ),
    }
    for message, spec in refused.items():
        with pytest.raises(ValidationError, match=message):
            batch_create(name="bad", bank=bank, spec=spec, created_by=researcher,
                         llm_judge_config=judge)  # fmt: skip
    assert not DebateBatch.objects.exists() and not Debate.objects.exists()


def test_the_bootstrap_resamples_questions_not_games():
    # One question where 1 always wins and one where 2 always wins, many games each: resampling
    # questions swings the rating difference far more than resampling 40 games would.
    games = [Game(0, 1, 2, 1.0)] * 20 + [Game(1, 1, 2, 0.0)] * 20
    _, low, high = soft_bradley_terry(games, [1, 2], samples=200)
    assert high[0] - low[0] > 400
    assert np.isfinite(low).all()


def test_best_of_n_variants_enter_as_their_own_entrants_and_keep_the_reward_models_choice(
    annotator2, researcher, django_capture_on_commit_callbacks, client
):
    """A sampling config enters twice, plain and as best of 3 (the active debate reward model
    choosing, as in live debates): the real model speaks through the batch path, and each
    entrant has its own rating, games and self-play row."""
    reward_model = debate_judgment_reward_model(annotator2)
    bank = QuestionBankFactory()
    BankQuestionFactory.create_batch(1, bank=bank)
    sampler = ModelConfigFactory(name="sampler", temperature=1.0, max_new_tokens=4,
                                 timeout_s=900)  # fmt: skip
    judge = ModelConfigFactory(name="judge")
    spec = BatchSpec(tournament_config_ids=[sampler.pk, sampler.pk], tournament_best_of_n=[1, 3],
                     count=1, rounds=1, max_new_tokens=4)  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False):
        batch = batch_create(name="bo3", bank=bank, spec=spec, created_by=researcher,
                             llm_judge_config=judge)  # fmt: skip
    debates = list(Debate.objects.filter(batch=batch))
    # Each ordered pair of entrants once, the first on the correct side.
    pairs = []
    for d in debates:
        n = {"a": d.best_of_n, "b": d.best_of_n_b or d.best_of_n}
        pairs.append((n[d.correct_side], n["b" if d.correct_side == "a" else "a"]))
    assert sorted(pairs) == [(1, 1), (1, 3), (3, 1), (3, 3)]

    _batch_round(batch, Debate.objects.filter(batch=batch), 1, spec)
    for d in Debate.objects.filter(batch=batch).prefetch_related("speeches"):
        for speech in d.speeches.all():
            assert speech.status == "done", speech.error
            candidates = list(SpeechCandidate.objects.filter(speech=speech))
            if d.best_of_n_for(speech.side) == 1:
                assert candidates == []
                continue
            # Three candidates, the one the active version scores highest kept as the speech.
            assert len(candidates) == 3
            [chosen] = [c for c in candidates if c.chosen]
            assert chosen.reward == max(c.reward for c in candidates)
            assert chosen.reward_version_id == reward_model.active_version_id
            assert speech.text == chosen.text
    # The judge's verdicts: the best-of-3 entrant persuades (80 % on its side) the plain one.
    for d in debates:
        n = {"a": d.best_of_n, "b": d.best_of_n_b or d.best_of_n}
        p_a = 50 if n["a"] == n["b"] else 80 if n["a"] == 3 else 20
        Verdict.objects.create(debate=d, kind=VerdictKind.LLM, judge_config=judge,
                               judge_name="judge", probability_a=p_a)  # fmt: skip
    DebateBatch.objects.filter(pk=batch.pk).update(status="done")
    result = tournament_compute(batch)
    assert result is not None and result.debates == 4
    plain, best = result.entries
    assert (plain.name, plain.best_of_n, best.name, best.best_of_n) == (
        "sampler", 1, "sampler (best of 3)", 3
    )  # fmt: skip
    assert best.rating > plain.rating
    assert plain.games == best.games == 2 and plain.self_play.n == best.self_play.n == 1
    client.force_login(researcher)
    page = client.get(reverse("debate:batch", args=[batch.pk])).content.decode()
    assert 'data-config="sampler (best of 3)"' in page
    body = Api(researcher).get(f"/debates/batches/{batch.pk}/tournament").json()
    assert [e["best_of_n"] for e in body["entries"]] == [1, 3]


def test_the_batch_form_reads_best_of_n_variants_and_refuses_bad_ones(researcher):
    from html import unescape

    from tests.helpers import signed_in

    bank = QuestionBankFactory()
    BankQuestionFactory.create_batch(2, bank=bank)
    a, b, c = (ModelConfigFactory(temperature=0.9) for _ in range(3))
    judge = ModelConfigFactory()
    form = {"name": "n", "bank": bank.pk, "count": 2, "protocol": "debate",
            "turn_order": "simultaneous", "rounds": 1, "speech_char_limit": 300,
            "quote_char_limit": 100, "max_new_tokens": 8, "llm_judge_config": judge.pk,
            "judge_max_new_tokens": 8, "judge_prompt": "{question}",
            "tournament_configs": [a.pk, b.pk]}  # fmt: skip
    client = signed_in(researcher)
    for variants, message in [
        ("x", "Give whole numbers separated by commas"),
        ("1", "Each best-of-n is from 2 to 16"),
        ("17", "Each best-of-n is from 2 to 16"),
        ("4,8,16", "2 models × 4 variants make 8 entrants"),
        # Well formed, but no debate reward model is active to choose the best speech.
        ("4", "needs an active reward model"),
    ]:
        page = unescape(
            client.post(
                "/debates/batches/new/", {**form, "tournament_best_of_n": variants}
            ).content.decode()
        )
        assert message in page, variants
    page = unescape(client.post("/debates/batches/new/",
                                {**form, "tournament_configs": [a.pk, b.pk, c.pk],
                                 "tournament_best_of_n": "4"}).content.decode())  # fmt: skip
    assert "3 models × 2 variants make 6 entrants" not in page  # six is allowed
    assert "needs an active reward model" in page
    assert not DebateBatch.objects.exists() and not Debate.objects.exists()
