import uuid

import krippendorff
import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from annotations.quality import (
    annotator_stats,
    disagreements,
    label_distribution,
    queue_agreement,
    time_histogram,
)
from annotations.services import label_submit, queue_item_claim
from tests.annotations.factories import labelled_queue, likert, make_queue, pairwise, pairwise_gold
from tests.factories import UserFactory
from tests.helpers import signed_in

FIRST = ["a", "a", "b", "b", "a", "b"]
SECOND = ["a", "b", "b", "b", "a", "a"]


def label_all(queue, person, values, times=None):
    for n, value in enumerate(values):
        lease = queue_item_claim(queue=queue, annotator=person)
        label_submit(
            assignment_id=lease.pk,
            annotator=person,
            value=value,
            time_spent_ms=(times or [1000] * len(values))[n],
            client_request_id=uuid.uuid4(),
        )


@pytest.fixture
def two_raters(db):
    one, two = UserFactory(username="one"), UserFactory(username="two")
    queue = make_queue(members=[one, two], items=pairwise(6), labels_per_item=2)
    label_all(
        queue, one, [{"choice": c} for c in FIRST], times=[1000, 2000, 3000, 4000, 5000, 6000]
    )
    label_all(queue, two, [{"choice": c} for c in SECOND])
    return queue


def test_cohens_kappa_by_hand(two_raters):
    agreement = queue_agreement(two_raters)
    # Observed 4/6 agreement, chance 1/2: kappa = (2/3 - 1/2) / (1/2) = 1/3.
    assert len(agreement.pairs) == 1
    pair = agreement.pairs[0]
    assert (pair.first, pair.second, pair.shared) == ("one", "two", 6)
    assert pair.kappa == pytest.approx(1 / 3)
    assert agreement.mean_kappa == pytest.approx(1 / 3)


def test_alpha_matches_the_library_on_the_raw_matrix(db):
    queue, _ = labelled_queue()
    codes = {"a": 0, "b": 1, "tie": 2}
    matrix = np.array(
        [
            [codes[c] for c in votes]
            for votes in (["a", "a", "b"], ["a", "b", "b"], ["b", "tie", "b"])
        ],
        dtype=float,
    )
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    agreement = queue_agreement(queue)
    assert agreement.alpha == pytest.approx(expected)
    assert agreement.level == "nominal" and agreement.items_with_overlap == 3
    assert agreement.pairs == []  # three shared items are too few for kappa


def test_likert_agreement_is_ordinal(db):
    one, two = UserFactory(username="one"), UserFactory(username="two")
    queue = make_queue(kind="likert", members=[one, two], items=likert(5), labels_per_item=2)
    label_all(queue, one, [{"rating": r} for r in (1, 3, 5, 7, 4)])
    label_all(queue, two, [{"rating": r} for r in (2, 3, 5, 6, 4)])
    agreement = queue_agreement(queue)
    matrix = np.array([[1, 3, 5, 7, 4], [2, 3, 5, 6, 4]], dtype=float)
    assert agreement.level == "ordinal"
    assert agreement.alpha == pytest.approx(
        krippendorff.alpha(
            reliability_data=matrix, level_of_measurement="ordinal", value_domain=list(range(1, 8))
        )
    )
    assert agreement.pairs[0].kappa > 0.8  # quadratic weights: near-misses count as close


def test_no_overlap_means_no_agreement_figures(annotator):
    queue = make_queue(members=[annotator], items=pairwise(2), labels_per_item=1)
    label_all(queue, annotator, [{"choice": "a"}] * 2)
    agreement = queue_agreement(queue)
    assert (agreement.alpha, agreement.mean_kappa, agreement.items_with_overlap) == (None, None, 0)


def test_annotator_stats(two_raters):
    one = next(s for s in annotator_stats(two_raters) if s.username == "one")
    assert one.labels == 6
    assert one.median_time_s == 3.5
    assert one.labels_per_hour == pytest.approx(3600 * 6 / 21)
    assert one.gold_accuracy is None


def test_gold_accuracy(annotator):
    queue = make_queue(
        members=[annotator],
        items=pairwise(4) + pairwise_gold(2, "a"),
        gold_rate=0.5,
        labels_per_item=1,
    )
    values = []
    while (lease := queue_item_claim(queue=queue, annotator=annotator)) is not None:
        values.append(lease.item.is_gold)
        choice = "a" if not lease.item.is_gold or sum(values[:-1]) == 0 else "b"
        label_submit(
            assignment_id=lease.pk,
            annotator=annotator,
            value={"choice": choice},
            time_spent_ms=1,
            client_request_id=uuid.uuid4(),
        )
    (stats,) = annotator_stats(queue)
    assert (stats.gold_labels, stats.gold_correct, stats.gold_accuracy) == (2, 1, 0.5)


def test_dashboard_for_researchers_only(two_raters, users):
    path = reverse("annotations:dashboard", args=[two_raters.pk])
    assert Client().get(path)["Location"].startswith(reverse("login"))
    for who in ("annotator", "outsider"):
        assert signed_in(users[who]).get(path).status_code == 403
    assert signed_in(users["researcher"]).post(path).status_code == 405
    assert (
        signed_in(users["researcher"]).get(reverse("annotations:dashboard", args=[999])).status_code
        == 404
    )
    html = signed_in(users["researcher"]).get(path).content.decode()
    assert '<td class="num" id="kappa">0.333</td>' in html
    assert html.count('<svg class="chart"') == 5
    assert "Labels per hour" in html  # every label fell within the last two days
    assert "https://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "3.5 s" in html  # one's median time


def test_dashboard_with_no_labels(researcher):
    queue = make_queue(items=pairwise(1))
    html = (
        signed_in(researcher)
        .get(reverse("annotations:dashboard", args=[queue.pk]))
        .content.decode()
    )
    assert "No labels yet." in html


def test_distribution_per_annotator(two_raters):
    rows = {row.username: row for row in label_distribution(two_raters)}
    assert rows["one"].total == 6
    assert rows["one"].counts == [
        ("A is better", 3, 50),
        ("B is better", 3, 50),
        ("Tie", 0, 0),
        ("Both bad", 0, 0),
    ]


def test_disagreements_list_items_whose_labels_differ(two_raters):
    split = disagreements(two_raters)
    differing = sum(1 for first, second in zip(FIRST, SECOND, strict=True) if first != second)
    assert len(split) == differing == 2
    assert all(len({caption for _, caption in row.labels}) == 2 for row in split)
    html = signed_in(two_raters.members.first()).get(
        reverse("annotations:dashboard", args=[two_raters.pk])
    )
    assert html.status_code == 403  # annotators never see who chose what


@pytest.mark.parametrize(
    ("times_ms", "first", "last"),
    [
        ([10, 20, 30, 40], "0.000–0.005", "≥ 0.035"),  # was "0.0–0.0" three times
        ([1000, 2000, 9000, 30_000], "0–1", "≥ 9"),
        ([400, 600, 700], "0.0–0.1", "≥ 0.7"),
    ],
)
def test_seconds_per_label_bins_are_distinct_and_round(annotator, times_ms, first, last):
    queue = make_queue(members=[annotator], items=pairwise(len(times_ms)), labels_per_item=1)
    label_all(queue, annotator, [{"choice": "a"}] * len(times_ms), times=times_ms)
    labels = [bar.label for bar in time_histogram(queue).bars]
    assert labels[0] == first and labels[-1] == last
    assert len(set(labels)) == len(labels)
    assert sum(float(bar.value_text) for bar in time_histogram(queue).bars) == len(times_ms)


def test_labels_of_unknown_time_count_in_no_time_statistic(annotator):
    queue = make_queue(members=[annotator], items=pairwise(4), labels_per_item=1)
    # Two timed labels and two sent without a time (no script on the page).
    label_all(queue, annotator, [{"choice": "a"}] * 4, times=[1000, None, 3000, None])
    stats = annotator_stats(queue)[0]
    assert stats.labels == 4
    assert stats.median_time_s == 2.0  # of 1 s and 3 s only
    assert stats.labels_per_hour == pytest.approx(3_600_000 * 2 / 4000)
    assert sum(float(bar.value_text) for bar in time_histogram(queue).bars) == 2
    untimed = make_queue(name="untimed", members=[annotator], items=pairwise(1))
    label_all(untimed, annotator, [{"choice": "b"}], times=[None])
    stats = annotator_stats(untimed)[0]
    assert (stats.median_time_s, stats.labels_per_hour) == (None, None)
    assert time_histogram(untimed).bars == []
