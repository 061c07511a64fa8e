import math

import pytest

from debate.models import Debate, Verdict
from debate.research.analytics import Filters, analytics_compute
from debate.research.imports import debate_files_import
from tests.debate.research_data import nyu_files

pytestmark = pytest.mark.django_db


def test_the_papers_judge_accuracy_comes_back_from_the_imported_rooms():
    report = debate_files_import(files=nyu_files())
    assert report.errors == []
    assert Debate.objects.count() == 631
    assert Debate.objects.filter(has_transcript=True).count() == 90

    stats = analytics_compute(Filters(paper_only=True, judge_kind="human"))
    by_name = {group.name: group for group in stats.groups}
    figures = {name: (round(100 * g.accuracy.value), g.accuracy.n) for name, g in by_name.items()}
    assert figures == {
        "Human debate": (84, 154),
        "Human consultancy": (74, 96),
        "AI debate": (78, 87),
        "AI consultancy": (80, 76),
    }
    # Honest consultants convinced the judge far more often than dishonest ones (87 % vs 60 %
    # for human consultants, as the paper reports; the AI consultant the other way round).
    split = {
        name: (g.honest.k, g.honest.n, g.dishonest.k, g.dishonest.n)
        for name, g in by_name.items()
        if g.honest is not None and g.dishonest is not None
    }
    assert split == {"Human consultancy": (42, 48, 29, 48), "AI consultancy": (28, 38, 33, 38)}
    assert Verdict.objects.filter(kind="human").count() > 413


def test_bradley_terry_ranks_the_stronger_debater_first_with_intervals():
    from debate.research.analytics import bradley_terry

    matches = [("strong", "weak")] * 30 + [("weak", "strong")] * 10 + [("strong", "mid")] * 12
    matches += [("mid", "strong")] * 8 + [("mid", "weak")] * 12 + [("weak", "mid")] * 8
    ratings = bradley_terry(matches)
    assert [r.name for r in ratings] == ["strong", "mid", "weak"]
    for rating in ratings:
        assert rating.low < rating.score < rating.high
    # 3:1 against weak: about 190 Elo points (400·log10 3), the prior pulls it in a little.
    strong, weak = ratings[0], ratings[2]
    assert 120 < strong.score - weak.score < 260
    assert sum(r.score for r in ratings) / 3 == pytest.approx(1000, abs=1)


def test_calibration_and_scores_follow_their_definitions():
    from debate.research.analytics import Row, group_stats

    def row(p_correct, turns=0):
        return Row(debate_id=1, kind="human", judge="j", p_correct=p_correct, turns=turns,
                   protocol="debate", human_debaters=True, honest=None, group="g",
                   winner=None, loser=None, chose_a=True)  # fmt: skip

    stats = group_stats("g", [row(0.9, 2), row(0.9), row(0.3), row(0.55)])
    assert (stats.accuracy.k, stats.accuracy.n) == (3, 4)
    assert stats.mean_score == pytest.approx(
        (2 * math.log2(0.9) - 0.1 + math.log2(0.3) + math.log2(0.55)) / 4
    )
    assert stats.brier == pytest.approx((0.01 + 0.01 + 0.49 + 0.2025) / 4)
    # Bins of confidence in the chosen answer: 0.55 → [0.5, 0.6) correct; 0.7 (chose the
    # wrong answer at 70 %) → [0.7, 0.8) wrong; 0.9 twice → [0.9, 1.0] right.
    filled = [(b.low, b.n, b.accuracy) for b in stats.calibration if b.n]
    assert filled == [(0.5, 1, 1.0), (0.7, 1, 0.0), (0.9, 2, 1.0)]
    assert stats.ece == pytest.approx((abs(1 - 0.55) + abs(0 - 0.7) + 2 * abs(1 - 0.9)) / 4)
    low, high = stats.accuracy.interval
    assert low < 0.75 < high
