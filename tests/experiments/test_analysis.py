"""The analysis against figures computed here independently: Wilson by its formula, the
difference by hand, the clustered bootstrap by a plain loop, the permutation p exactly."""

from __future__ import annotations

import itertools
import math
import random
import uuid
from datetime import timedelta

import numpy as np
import pytest

from experiments import stats
from experiments.analysis import experiment_analysis
from experiments.services import participant_join, participant_lease, response_submit
from tests.experiments.conftest import GOLD, bank_experiment, make_experiment, transcripts_ready

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


# --- calibration ---------------------------------------------------------------------------
# Per participant, the probability (percent) each puts on the correct answer, item by item.
ON_CORRECT = [[70, 90, 40, 60], [55, 50, 95, 80], [30, 65, 85, 99], [60, 60, 60, 10],
              [75, 45, 90, 35], [99, 99, 1, 70]]  # fmt: skip


def brier_by_hand(values):
    return sum((1 - v) ** 2 for v in values) / len(values)


@pytest.fixture
def judged(researcher, transcripts_sent, fake_debaters, django_capture_on_commit_callbacks):
    """A bank experiment (direct, debate): six participants, each giving ON_CORRECT's
    probabilities on the correct answer (turned into P(A) by the side it is on)."""
    with django_capture_on_commit_callbacks(execute=True):
        experiment = bank_experiment(researcher=researcher, protocols=("direct", "debate"))
    transcripts_ready(experiment)
    by_arm = {}
    for number, percents in enumerate(ON_CORRECT):
        person = participant_join(
            experiment=experiment, external_id=f"P{number}", study_id="s", session_id="x"
        )[0]
        given = []
        while (lease := participant_lease(participant=person)) is not None:
            side = person.arm.arm_items.get(item=lease.item_id).correct_side
            percent = percents[len(given)]
            response_submit(
                participant=person, assignment_id=lease.pk, client_request_id=uuid.uuid4(),
                value={"probability_a": percent if side == "a" else 100 - percent},
            )  # fmt: skip
            given.append(percent / 100)
        by_arm.setdefault(person.arm.protocol, []).append(given)
    return experiment, by_arm


def test_brier_scores_and_their_clustered_intervals_match_an_independent_computation(judged):
    experiment, by_arm = judged
    analysis = experiment_analysis(experiment)
    assert "Brier" in analysis.methods["calibration"]
    assert "clustered by participant" in analysis.methods["calibration"]
    for figures in analysis.arms:
        people = by_arm[figures.arm.protocol]
        everyone = [p for person in people for p in person]
        calibration = figures.calibration
        assert calibration.source == "participants' probabilities"
        assert calibration.n == len(everyone) == 4 * len(people)
        assert calibration.brier.value == pytest.approx(brier_by_hand(everyone))
        # The bootstrap by a plain loop over the same draws of participants (the seed's, in
        # the order they first answered), each bringing all their answers.
        rng = np.random.default_rng(experiment.seed)
        picks = rng.integers(0, len(people), size=(stats.BOOTSTRAP_REPS, len(people)))
        draws = [brier_by_hand([p for i in row for p in people[i]]) for row in picks]
        low, high = np.quantile(draws, [0.025, 0.975])
        assert calibration.brier.low == pytest.approx(low, abs=1e-12)
        assert calibration.brier.high == pytest.approx(high, abs=1e-12)
        # Accuracy agrees: an answer is right above 50 % on the correct answer.
        assert figures.accuracy.k == sum(p > 0.5 for p in everyone)


def test_reliability_bins_match_a_count_by_hand(judged):
    experiment, by_arm = judged
    for figures in experiment_analysis(experiment).arms:
        everyone = [p for person in by_arm[figures.arm.protocol] for p in person]
        expected = {}
        for p in everyone:
            confidence = max(p, 1 - p)
            # 0.6 from 1 − 0.4 must land in 60–70 %: whole percent first.
            low = min(90, int(round(confidence * 100)) // 10 * 10)
            n, right, total = expected.get(low, (0, 0, 0.0))
            expected[low] = (n + 1, right + (p > 0.5), total + round(confidence, 2))
        for b in figures.calibration.bins:
            n, right, total = expected.get(round(b.low * 100), (0, 0, 0.0))
            assert (b.n, b.correct) == (n, right)
            if n:
                assert b.confidence == pytest.approx(total / n)


def test_the_page_and_the_api_show_the_calibration(judged, researcher):
    from tests.helpers import Api, signed_in

    experiment, _ = judged
    page = signed_in(researcher).get(f"/experiments/{experiment.pk}/").content.decode()
    assert 'id="calibration"' in page and "reliability-chart" in page
    assert page.count('class="calibration-row"') == 2 and "Brier score" in page
    analysis = experiment_analysis(experiment)
    shown = analysis.arms[0].calibration.brier
    assert f"{shown.value:.3f}" in page
    out = Api(researcher).get(f"/experiments/{experiment.pk}/analysis").json()
    first = out["arms"][0]["calibration"]
    assert first["brier"]["value"] == pytest.approx(shown.value)
    assert "clustered by participant" in first["brier"]["method"]
    assert sum(b["n"] for b in first["bins"]) == analysis.arms[0].calibration.n


def test_a_suggestion_arms_confidence_is_calibrated_and_other_rating_arms_are_not(
    fake_backend,
):
    from experiments.assistance import assistance_job_run
    from experiments.models import AssistanceJob, AssistanceText

    experiment = make_experiment(assistance="suggestion", seed=5)
    helped = experiment.arms.get(position=1)
    job = AssistanceJob.objects.create(arm=helped, items_total=4)
    assistance_job_run(job_id=job.pk)
    # The assistant says A at 80 % on every item: right on the two whose gold is a.
    AssistanceText.objects.update(suggested_value={"choice": "a"}, confidence=0.8)
    person = None
    while person is None or person.arm != helped:
        number = experiment.participants.count()
        person = participant_join(
            experiment=experiment, external_id=f"P{number}", study_id="s", session_id="x"
        )[0]
    while (lease := participant_lease(participant=person)) is not None:
        response_submit(participant=person, assignment_id=lease.pk,
                        value={"choice": "a"}, client_request_id=uuid.uuid4())  # fmt: skip
    rows = {f.arm.position: f for f in experiment_analysis(experiment).arms}
    assert rows[0].calibration is None
    calibration = rows[1].calibration
    assert calibration.source == "the assistant's suggestion confidence" and calibration.n == 4
    on_correct = [0.8 if gold == "a" else 0.2 for gold in GOLD]
    assert calibration.brier.value == pytest.approx(brier_by_hand(on_correct))
    assert [(b.n, b.correct) for b in calibration.bins if b.n] == [(4, 2)]


def test_a_bin_edge_float_lands_in_the_bin_its_percent_names():
    bins = stats.reliability([1 - 0.4000000000000001, 0.5, 0.95, 0.05])
    assert [(round(b.low, 1), b.n, b.correct) for b in bins] == [
        (0.5, 1, 0), (0.6, 1, 1), (0.7, 0, 0), (0.8, 0, 0), (0.9, 2, 1)]  # fmt: skip


def test_late_answers_are_left_out_of_the_calibration_as_of_the_accuracy(
    researcher, transcripts_sent, fake_debaters, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        experiment = bank_experiment(
            researcher=researcher, protocols=("direct", "consultancy"), time_limit_s=5,
            slug="late",
        )  # fmt: skip
    transcripts_ready(experiment)
    person = participant_join(experiment=experiment, external_id="P1", study_id="s",
                              session_id="x")[0]  # fmt: skip
    on_time = participant_lease(participant=person)
    response_submit(participant=person, assignment_id=on_time.pk, value={"probability_a": 60},
                    client_request_id=uuid.uuid4(), now=on_time.created_at)  # fmt: skip
    late = participant_lease(participant=person)
    response_submit(
        participant=person, assignment_id=late.pk, value={"probability_a": 60},
        client_request_id=uuid.uuid4(), now=late.created_at + timedelta(seconds=5 + 2 + 1),
    )  # fmt: skip
    figures = {f.arm.pk: f for f in experiment_analysis(experiment).arms}[person.arm_id]
    assert figures.late == 1 and figures.accuracy.n == 1 and figures.calibration.n == 1
