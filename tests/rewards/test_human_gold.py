"""Human gold for best-of-n experiments: the blind pairs (reproducible from the seed, sides
balanced, nothing on the judge's page says which side is best-of-n), the win-rate curve and
its fit computed independently from hand-made labels, bad input refused with nothing made,
and a run with synthetic scorers that queues the pairs."""

from __future__ import annotations

import math
import random
from unittest import mock

import pytest
from django.urls import reverse

from annotations.models import Item, Queue
from core.stats import Share
from rewards.best_of_n import ExperimentInvalid, best_of_n_run, experiment_analysis
from rewards.blind import BlindTally
from rewards.human_gold import draw_pairs, human_curve
from rewards.models import BestOfNExperiment, BestOfNScore, ExperimentStatus, HumanGold
from rewards.overoptimisation import kl_best_of_n
from tests.factories import ModelConfigFactory
from tests.rewards.factories import add_items, label_all, preference_items, preference_queue
from tests.rewards.test_best_of_n import PROMPTS, FakeBackend, _start, _version_with_checkpoint


@pytest.fixture
def setup(db, annotator, tmp_path):
    """As test_best_of_n's: a queue of 6 prompts, two versions with checkpoints, a policy."""
    queue = preference_queue(members=[annotator])
    add_items(queue, preference_items(6, seed=1))
    proxy = _version_with_checkpoint(queue, tmp_path, "proxy")
    gold = _version_with_checkpoint(queue, tmp_path, "gold")
    return {"queue": queue, "proxy": proxy, "gold": gold, "policy": ModelConfigFactory()}


def _scores(prompts: int, big_n: int, seed: int) -> tuple[list[list[float]], list[list[str]]]:
    rng = random.Random(seed)
    proxy = [[rng.random() for _ in range(big_n)] for _ in range(prompts)]
    texts = [[f"answer {p}.{s}" for s in range(big_n)] for p in range(prompts)]
    return proxy, texts


# --- the pairs ------------------------------------------------------------------------------
def test_pairs_are_reproducible_from_the_seed_and_sides_are_balanced():
    proxy, texts = _scores(10, 8, seed=1)
    first = draw_pairs(proxy, texts, sample_size=6, seed=7)
    assert first == draw_pairs(proxy, texts, sample_size=6, seed=7)
    assert first != draw_pairs(proxy, texts, sample_size=6, seed=8)
    # 6 prompts × n in {2, 4, 8}; every text differs, so a pair goes unasked only when the
    # one random sample is the pick itself.
    assert len(first.pairs) + first.identical == 18 and len(first.pairs) >= 15
    assert all(p.best != p.base for p in first.pairs)
    assert {p.n for p in first.pairs} == {2, 4, 8}
    sides = [p.side for p in first.pairs]
    assert abs(sides.count("a") - sides.count("b")) <= 1
    for pair in first.pairs:
        if pair.n == 8:  # the whole set: the proxy's best of all N
            assert proxy[pair.prompt_index][pair.best] == max(proxy[pair.prompt_index])
        # The pick is the best of n samples: at least n − 1 others score below it.
        below = sum(s < proxy[pair.prompt_index][pair.best] for s in proxy[pair.prompt_index])
        assert below >= pair.n - 1
    odd = draw_pairs(*_scores(3, 4, seed=2), sample_size=3, seed=0)  # 3 × {2, 4}: 6 pairs
    assert abs([p.side for p in odd.pairs].count("a") - 3) <= 1


def test_a_pair_with_the_same_text_on_both_sides_is_not_queued():
    proxy, _ = _scores(4, 4, seed=3)
    same = [["same words"] * 4 for _ in range(4)]
    drawn = draw_pairs(proxy, same, sample_size=4, seed=0)
    assert drawn.pairs == [] and drawn.identical == 8
    with pytest.raises(ValueError, match="1 to 4"):
        draw_pairs(proxy, same, sample_size=5, seed=0)


# --- the curve and the fit ------------------------------------------------------------------
def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_the_curve_and_its_fit_match_a_hand_computation():
    wins = {2: (7, 10), 4: (9, 12), 8: (6, 10)}  # best-of-n wins, decisive labels
    # Hand-made labels of two prompts, which add up to `wins` (and a tie each).
    split = {2: ((4, 5), (3, 5)), 4: ((5, 6), (4, 6)), 8: ((2, 5), (4, 5))}
    tallies = {
        (prompt, n): BlindTally(Share(*split[n][prompt]), ties=1, both_bad=0)
        for n in split for prompt in (0, 1)
    }  # fmt: skip
    curve = human_curve(tallies, [1, 2, 4, 8])
    assert [p.n for p in curve.points] == [2, 4, 8] and curve.labels == 32
    assert curve.prompts == 2 and [p.ties for p in curve.points] == [2, 2, 2]
    for point in curve.points:
        k, d = wins[point.n]
        assert point.wins.value == pytest.approx(k / d)
        low, high = _wilson(k, d)
        assert point.wins.low == pytest.approx(low, abs=1e-9)
        assert point.wins.high == pytest.approx(high, abs=1e-9)
        assert point.d == pytest.approx(math.sqrt(math.log(point.n) - (point.n - 1) / point.n))
    # Least squares of y = α d − β d² by its normal equations, by hand.
    ds = [math.sqrt(kl_best_of_n(n)) for n in (2, 4, 8)]
    ys = [k / d - 0.5 for k, d in wins.values()]
    s2 = sum(d**2 for d in ds)
    s3 = sum(d**3 for d in ds)
    s4 = sum(d**4 for d in ds)
    t1 = sum(d * y for d, y in zip(ds, ys, strict=True))
    t2 = sum(d * d * y for d, y in zip(ds, ys, strict=True))
    # [s2 -s3; s3 -s4] [α β]ᵀ = [t1 t2]ᵀ
    det = -s2 * s4 + s3 * s3
    alpha = (-t1 * s4 + s3 * t2) / det
    beta = (s2 * t2 - s3 * t1) / det
    fit = curve.fit
    assert fit is not None
    assert fit.alpha.value == pytest.approx(alpha) and fit.beta.value == pytest.approx(beta)
    assert beta > 0 and fit.peak_d.value == pytest.approx(alpha / (2 * beta))
    assert kl_best_of_n(round(fit.peak_n)) == pytest.approx(fit.peak_d.value**2, rel=0.3)
    assert fit.alpha.low < fit.alpha.high and fit.resamples == 1000
    # Two prompts: a resample is prompt 0 twice, prompt 1 twice, or both; the interval's ends
    # are fits of those three label sets, by hand too.
    ends = []
    for rows in ((0, 0), (1, 1), (0, 1)):
        ws = [sum(split[n][r][0] for r in rows) / sum(split[n][r][1] for r in rows) - 0.5
              for n in (2, 4, 8)]  # fmt: skip
        t1 = sum(d * y for d, y in zip(ds, ws, strict=True))
        t2 = sum(d * d * y for d, y in zip(ds, ws, strict=True))
        ends.append((-t1 * s4 + s3 * t2) / det)
    assert min(ends) == pytest.approx(fit.alpha.low) and max(ends) == pytest.approx(fit.alpha.high)


def test_prompts_that_agree_give_a_bootstrap_interval_of_no_width():
    same = {(p, n): BlindTally(Share(k, 4), 0, 0) for p in range(5) for n, k in ((2, 3), (4, 2))}
    fit = human_curve(same, [1, 2, 4]).fit
    assert fit is not None and fit.alpha.low == pytest.approx(fit.alpha.high)
    assert fit.alpha.low == pytest.approx(fit.alpha.value)


def test_without_gold_scores_the_proxy_analysis_is_unchanged():
    from rewards.overoptimisation import analyse

    proxy, _ = _scores(6, 8, seed=4)
    gold = [[-v for v in row] for row in proxy]
    full, alone = analyse(proxy, gold, resamples=50), analyse(proxy, None, resamples=50)
    assert [p.proxy for p in alone.points] == [p.proxy for p in full.points]
    assert alone.fit.alpha_proxy == full.fit.alpha_proxy
    assert all(p.gold is None for p in alone.points)
    assert (alone.fit.alpha, alone.fit.beta, alone.fit.peak_d) == (None, None, None)


def test_no_fit_below_two_ns_with_labels():
    curve = human_curve({(0, 2): BlindTally(Share(3, 4), 0, 0)}, [1, 2, 4])
    assert curve.fit is None and curve.points[1].wins.n == 0


# --- start: bad input -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gold": None, "human_prompts": 0}, "1 to 4"),
        ({"gold": None, "human_prompts": 5}, "1 to 4"),
        ({"gold": None, "human_prompts": 2, "proxies": "both"}, "exactly one proxy"),
        ({"human_prompts": 2}, "Choose one gold scorer"),
        ({"gold": None}, "Choose one gold scorer"),
    ],
)
def test_bad_human_gold_is_refused_and_nothing_starts(setup, researcher, overrides, message):
    if overrides.get("proxies") == "both":
        overrides["proxies"] = [setup["proxy"], setup["gold"]]
    with (
        mock.patch("rewards.best_of_n._enqueue") as enqueue,
        pytest.raises(ExperimentInvalid, match=message),
    ):
        _start(setup, researcher, **overrides)
    assert not enqueue.called and not BestOfNExperiment.objects.exists()


def test_the_form_refuses_a_human_sample_of_zero(client, setup, researcher):
    client.force_login(researcher)
    data = {"name": "x", "policy": setup["policy"].pk, "queue": setup["queue"].pk,
            "samples_per_prompt": 4, "temperature": 1, "seed": 0, "max_new_tokens": 8,
            "proxies": [setup["proxy"].pk], "gold_kind": "human", "human_prompts": 0}  # fmt: skip
    with mock.patch("rewards.best_of_n._enqueue") as enqueue:
        response = client.post(reverse("rewards:experiment_create"), data)
    assert response.status_code == 400
    assert "Human gold needs a sample of 1 to 6 prompts" in response.content.decode()
    assert not enqueue.called and not BestOfNExperiment.objects.exists()
    data["human_prompts"] = 2
    with mock.patch("rewards.best_of_n._enqueue") as enqueue:
        response = client.post(reverse("rewards:experiment_create"), data)
    experiment = BestOfNExperiment.objects.get()
    assert response.status_code == 302 and experiment.gold is None
    assert (experiment.gold_kind, experiment.human_prompts) == ("human", 2)


# --- a run ----------------------------------------------------------------------------------
def _run_human(setup, researcher, monkeypatch):
    with mock.patch("rewards.best_of_n._enqueue"):
        experiment = _start(setup, researcher, gold=None, human_prompts=3)
    scored = []

    def rewards(*, version, pairs):
        scored.append(version.pk)
        return [float(len(text)) for _, text in pairs]

    monkeypatch.setattr("llm.generation.backend_for", lambda config: FakeBackend())
    monkeypatch.setattr("rewards.scoring.version_rewards", rewards)
    best_of_n_run(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DONE, experiment.error
    assert set(scored) == {setup["proxy"].pk}  # no model gold to score with
    return experiment


def test_a_human_gold_run_queues_blind_pairs_of_the_proxys_picks(
    setup, researcher, annotator, monkeypatch
):
    experiment = _run_human(setup, researcher, monkeypatch)
    human = HumanGold.objects.get(experiment=experiment)
    pairs = human.typed_pairs
    assert pairs.proxy_version_id == setup["proxy"].pk
    # The analysis keeps the proxy curve and no model gold at all.
    (record,) = experiment_analysis(experiment)
    assert all(p.gold is None for p in record.analysis.points)
    assert record.analysis.fit.alpha is None and record.analysis.fit.observed_peak_n is None
    assert record.analysis.points[-1].proxy.value > 0
    assert len(pairs.items) + pairs.identical == 3 * 3  # 3 prompts × n in {2, 4, 8}
    assert human.queue.kind == "pairwise" and not human.queue.members.exists()
    texts = {
        (s.prompt_index, s.sample_index): s.text for s in experiment.samples.all()
    }  # fmt: skip
    for item in Item.objects.filter(queue=human.queue):
        pair = pairs.items[item.pk]
        other = "b" if pair.side == "a" else "a"
        assert item.payload[f"response_{pair.side}"] == texts[(pair.prompt_index, pair.best)]
        assert item.payload[f"response_{other}"] == texts[(pair.prompt_index, pair.base)]
        assert item.payload["prompt"] == PROMPTS[pair.prompt_index]
    # The same seed draws the same pairs again.
    from rewards.best_of_n import experiment_scores
    from rewards.human_gold import draw_pairs as again

    proxy = experiment_scores(experiment).proxies[setup["proxy"].pk]
    grid_texts = [[texts[(p, s)] for s in range(8)] for p in range(len(PROMPTS))]
    redrawn = again(proxy, grid_texts, sample_size=3, seed=experiment.seed)
    assert sorted(map(repr, redrawn.pairs)) == sorted(map(repr, pairs.items.values()))


def test_the_judge_never_sees_which_side_is_best_of_n(
    client, setup, researcher, annotator, monkeypatch
):
    from annotations.services import queue_members_set

    experiment = _run_human(setup, researcher, monkeypatch)
    human = HumanGold.objects.get(experiment=experiment)
    queue_members_set(queue=human.queue, users=[annotator])
    client.force_login(annotator)
    response = client.get(reverse("annotations:label", args=[human.queue.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    # The page holds the claimed item (and may hold the next one, prefetched).
    claimed = list(Item.objects.filter(queue=human.queue, assignments__annotator=annotator))
    assert claimed
    lowered = page.lower()
    for hidden in ("best-of", "best of", "proxy", "gold", "experiment", experiment.name.lower()):
        assert hidden not in lowered, hidden
    for item in claimed:
        pair = human.typed_pairs.items[item.pk]
        assert item.payload["response_a"] in page and item.payload["response_b"] in page
        assert f"n = {pair.n}" not in lowered and f"n={pair.n}" not in lowered
        scores = BestOfNScore.objects.filter(sample__experiment=experiment,
                                             sample__prompt_index=pair.prompt_index)  # fmt: skip
        for score in scores:
            assert repr(score.score) not in page and f"{score.score:.3f}" not in page


def test_the_page_shows_the_human_curve_from_labels(
    client, setup, researcher, annotator, monkeypatch
):
    from annotations.services import queue_members_set

    experiment = _run_human(setup, researcher, monkeypatch)
    human = HumanGold.objects.get(experiment=experiment)
    url = reverse("rewards:experiment", args=[experiment.pk])
    client.force_login(researcher)
    page = client.get(url).content.decode()
    assert 'id="human-gold-plot"' in page and "n = 0 decisive labels" in page
    assert "Human labels, not a reward model" in page and "Wilson" in page
    # Every label picks best-of-n: each n's win rate is k/k.
    queue_members_set(queue=human.queue, users=[annotator])
    items = human.typed_pairs.items
    answers = {item.external_id: items[item.pk].side
               for item in Item.objects.filter(queue=human.queue)}  # fmt: skip
    done = label_all(human.queue, annotator, answers)
    assert done == len(items)
    page = client.get(url).content.decode()
    assert f"n = {done} decisive label" in page
    for n in {p.n for p in items.values()}:
        k = sum(p.n == n for p in items.values())
        assert f"100 % ({k}/{k}; 95 % CI" in page
    assert Queue.objects.filter(pk=human.queue.pk).exists()


# --- the API read ---------------------------------------------------------------------------
def test_the_api_reads_the_same_curve_as_the_page(setup, researcher, annotator, monkeypatch):
    from annotations.services import queue_members_set
    from rewards.human_gold import human_gold_result
    from tests.helpers import Api

    experiment = _run_human(setup, researcher, monkeypatch)
    human = HumanGold.objects.get(experiment=experiment)
    queue_members_set(queue=human.queue, users=[annotator])
    items = human.typed_pairs.items
    # Best-of-n wins wherever n = 2, loses elsewhere.
    answers = {
        item.external_id: items[item.pk].side if items[item.pk].n == 2
        else ("b" if items[item.pk].side == "a" else "a")
        for item in Item.objects.filter(queue=human.queue)
    }  # fmt: skip
    label_all(human.queue, annotator, answers)
    api = Api(researcher)
    response = api.get(f"/best-of-n/{experiment.pk}")
    assert response.status_code == 200
    body = response.json()
    assert (body["gold_kind"], body["gold_version"], body["human_prompts"]) == ("human", None, 3)
    gold = body["human_gold"]
    assert gold["queue"] == human.queue.pk and gold["labels"] == len(items)
    assert "Wilson" in gold["method"] and "best-of-1" in gold["method"]
    curve = human_gold_result(human, experiment.samples_per_prompt, seed=experiment.seed)
    for point, out in zip(curve.points, gold["points"], strict=True):
        assert (out["n"], out["wins"], out["decisive"]) == (point.n, point.wins.k, point.wins.n)
        assert out["value"] == (1.0 if point.n == 2 else 0.0) and out["low"] == point.wins.low
    assert gold["fit"]["alpha"]["value"] == pytest.approx(curve.fit.alpha.value)
    assert gold["fit"]["alpha"]["low"] == pytest.approx(curve.fit.alpha.low)
    assert api.get(f"/best-of-n/{experiment.pk + 99}").status_code == 404
    assert Api(annotator).get(f"/best-of-n/{experiment.pk}").status_code == 403


def test_the_openapi_document_lists_the_reads_errors(db):
    from config.api import api

    operation = api.get_openapi_schema()["paths"]["/api/best-of-n/{experiment_id}"]["get"]
    assert {"200", "401", "403", "404"} <= set(map(str, operation["responses"]))


def test_the_api_reads_a_model_gold_experiment_without_a_human_curve(setup, researcher):
    from tests.helpers import Api

    with mock.patch("rewards.best_of_n._enqueue"):
        experiment = _start(setup, researcher)
    body = Api(researcher).get(f"/best-of-n/{experiment.pk}").json()
    assert (body["gold_kind"], body["gold_version"]) == ("model", setup["gold"].pk)
    assert body["human_gold"] is None and body["status"] == "queued" and body["prompts"] == 4


def test_the_human_export_carries_each_label_with_its_hidden_pair(
    client, setup, researcher, annotator, monkeypatch
):
    import csv
    import io

    from annotations.services import queue_members_set

    experiment = _run_human(setup, researcher, monkeypatch)
    human = HumanGold.objects.get(experiment=experiment)
    queue_members_set(queue=human.queue, users=[annotator])
    items = human.typed_pairs.items
    first = min(items)
    answers = {item.external_id: "tie" if item.pk == first else items[item.pk].side
               for item in Item.objects.filter(queue=human.queue)}  # fmt: skip
    label_all(human.queue, annotator, answers, limit=len(items) - 1)  # one left unlabelled
    url = reverse("rewards:experiment_human_export", args=[experiment.pk])
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    client.force_login(researcher)
    response = client.get(url)
    assert response["Content-Disposition"].endswith(f'best-of-n-{experiment.pk}-human-gold.csv"')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == len(items)
    by_item = {int(row["item_id"]): row for row in rows}
    for item_id, pair in items.items():
        row = by_item[item_id]
        assert (int(row["n"]), int(row["best_of_n_sample"]), row["best_of_n_side"]) == (
            pair.n, pair.best, pair.side)  # fmt: skip
    # Every label but one picked best-of-n, one item (if claimed) got a tie, one is unlabelled.
    assert sum(row["choice"] == "" for row in rows) == 1
    assert by_item[first]["choice"] in ("tie", "") and by_item[first]["best_of_n_won"] == ""
    won = [row["best_of_n_won"] for row in rows if row["choice"] in ("a", "b")]
    assert won == ["1"] * len(won) and len(won) >= len(items) - 2
    other = reverse("rewards:experiment_human_export", args=[experiment.pk + 99])
    assert client.get(other).status_code == 404
    assert client.post(url).status_code == 405


def test_the_fitted_curve_leaves_the_frame_where_it_passes_1_and_the_dots_stay_in_it():
    from rewards.charts import human_gold_chart

    # 0.5 + d(4 − 2d) passes 1 between d ≈ 0.14 and 1.86: drawn beyond the top, clipped there.
    chart = human_gold_chart([(2, 0.44, 1.0, 0.6, 1.0, 3), (8, 1.1, 0.0, 0.0, 0.4, 3)],
                             alpha=4.0, beta=2.0, peak_d=1.0)  # fmt: skip
    ys = [float(point.split(",")[1]) for point in chart.fit.split()]
    assert min(ys) < chart.top  # above the frame: not flattened onto its edge
    assert all(chart.top <= p.y <= chart.bottom for p in chart.points)
    assert chart.plot_height == chart.bottom - chart.top
