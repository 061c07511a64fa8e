"""The analysis against figures computed here independently: Wilson by its formula, the
difference by hand, the clustered bootstrap by a plain loop, the permutation p exactly."""

from __future__ import annotations

import itertools
import math
import random
import uuid
from datetime import timedelta

import pytest

from experiments import stats
from experiments.analysis import experiment_analysis
from experiments.services import participant_join, participant_lease, response_submit
from tests.experiments.conftest import GOLD, make_experiment

pytestmark = pytest.mark.django_db

# Per participant, how many of the 4 items they get right (in join order).
RIGHT = [1, 2, 2, 4, 3, 4, 1, 3]


def wilson(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def pooled(tallies):
    return sum(k for k, _ in tallies) / sum(n for _, n in tallies)


@pytest.fixture
def finished():
    experiment = make_experiment(seed=5)
    by_arm = {0: [], 1: []}
    for number, right in enumerate(RIGHT):
        person = participant_join(
            experiment=experiment, external_id=f"P{number}", study_id="s", session_id="x"
        )[0]
        answered = 0
        while (lease := participant_lease(participant=person)) is not None:
            gold = GOLD[int(lease.item.payload["prompt"].split()[1].rstrip("?"))]
            wrong = "b" if gold == "a" else "a"
            response_submit(
                participant=person,
                assignment_id=lease.pk,
                value={"choice": gold if answered < right else wrong},
                client_request_id=uuid.uuid4(),
                now=lease.created_at + timedelta(seconds=2),
            )
            answered += 1
        by_arm[person.arm.position].append((right, 4))
    return experiment, by_arm


def test_per_arm_accuracy_and_interval_match_an_independent_computation(finished):
    experiment, by_arm = finished
    analysis = experiment_analysis(experiment)
    for figures in analysis.arms:
        tallies = by_arm[figures.arm.position]
        k, n = sum(t[0] for t in tallies), sum(t[1] for t in tallies)
        assert (figures.accuracy.k, figures.accuracy.n) == (k, n)
        assert figures.participants == len(tallies) == 4 and figures.labels == 16
        low, high = wilson(k, n)
        assert figures.accuracy.low == pytest.approx(low, abs=1e-9)
        assert figures.accuracy.high == pytest.approx(high, abs=1e-9)
        assert figures.mean_time_s == pytest.approx(2.0)


def test_the_difference_its_clustered_interval_and_p_match_independent_computations(finished):
    experiment, by_arm = finished
    comparison = experiment_analysis(experiment).comparisons[0]
    treated, control = by_arm[1], by_arm[0]
    assert comparison.difference.value == pytest.approx(pooled(treated) - pooled(control))
    # The bootstrap by a plain loop: resample participants of each arm with replacement.
    rng = random.Random(1)
    draws = sorted(
        pooled([rng.choice(treated) for _ in treated])
        - pooled([rng.choice(control) for _ in control])
        for _ in range(4000)
    )
    assert comparison.difference.low == pytest.approx(draws[int(0.025 * 4000)], abs=0.07)
    assert comparison.difference.high == pytest.approx(draws[int(0.975 * 4000)], abs=0.07)
    # The permutation p exactly: every way of splitting the 8 participants 4 / 4.
    everyone = treated + control
    observed = abs(pooled(treated) - pooled(control))
    splits = list(itertools.combinations(range(8), 4))
    extreme = sum(
        abs(
            pooled([everyone[i] for i in chosen])
            - pooled([everyone[i] for i in range(8) if i not in chosen])
        )
        >= observed - 1e-12
        for chosen in splits
    )
    assert comparison.p_value == pytest.approx(extreme / len(splits), abs=0.03)
    # The sandwich score with P_expert = 1.
    expected = (pooled(treated) - pooled(control)) / (1 - pooled(control))
    assert comparison.sandwich.value == pytest.approx(expected)


def test_clustered_resampling_is_wider_than_pretending_labels_are_independent():
    # Two participants who always agree with themselves: 8/8 and 0/8 right. As 16 independent
    # labels the spread would be small; by participant it spans everything.
    treated, control = [(8, 8), (0, 8)], [(4, 8), (4, 8)]
    interval = stats.difference_bootstrap(treated, control, seed=3)
    assert interval.low <= -0.45 and interval.high >= 0.45


def test_no_difference_gives_a_large_p():
    same = [(3, 4), (2, 4), (3, 4)]
    assert stats.permutation_p(same, list(same)) > 0.9
