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
