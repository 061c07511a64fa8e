from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from experiments.assignment import arm_for, block_size
from experiments.errors import ExperimentFrozen, LinkClosed, NotYours, TimeNotUp
from experiments.models import Arm, Assistance, Experiment, Participant, Response
from experiments.services import (
    ArmSpec,
    arm_add,
    arm_change,
    experiment_create,
    experiment_link_set,
    participant_join,
    participant_lease,
    response_submit,
    response_time_out,
)
from tests.experiments.conftest import make_experiment, question_set

pytestmark = pytest.mark.django_db


def join(experiment, external_id):
    return participant_join(
        experiment=experiment, external_id=external_id, study_id="S1", session_id=f"s-{external_id}"
    )[0]


def test_an_experiment_is_made_with_its_arms_each_serving_copies_of_the_gold_items():
    experiment = make_experiment()
    arms = list(experiment.arms.order_by("position"))
    assert [arm.name for arm in arms] == ["Control arm", "Helped arm"]
    for arm in arms:
        assert arm.arm_items.count() == 4
        assert not arm.queue.items.filter(is_gold=True).exists()  # gold stays in ArmItem.source
        assert {row.source.is_gold for row in arm.arm_items.select_related("source")} == {True}
    assert arms[0].prompt == "" and "{item}" in arms[1].prompt


@pytest.mark.parametrize(
    ("arms", "field", "words"),
    [
        ([ArmSpec(name="only")], "arms", "at least two arms"),
        ([ArmSpec(name="a", time_limit_s=0), ArmSpec(name="b")], "arms.0.time_limit_s", "1 to"),
        ([ArmSpec(name="a"), ArmSpec(name="b", time_limit_s=86_400)], "arms.1.time_limit_s",
         "an hour"),
        ([ArmSpec(name="a"), ArmSpec(name="b", assistance=Assistance.CRITIQUE)],
         "arms.1.model_config", "choose the model config"),
        ([ArmSpec(name="a"), ArmSpec(name="A")], "arms", "same name"),
    ],
)  # fmt: skip
def test_bad_designs_are_refused_clearly_and_create_nothing(arms, field, words):
    queue = question_set()
    queues_before = type(queue).objects.count()
    with pytest.raises(ValidationError) as refused:
        experiment_create(name="x", slug="x", question_set=queue, arms=arms, consent="ok",
                          completion_code="C")  # fmt: skip
    assert words in " ".join(refused.value.message_dict[field])
    assert not Experiment.objects.exists() and not Arm.objects.exists()
    assert type(queue).objects.count() == queues_before


def test_a_question_set_without_gold_is_refused():
    queue = question_set(gold=False)
    with pytest.raises(ValidationError) as refused:
        experiment_create(name="x", slug="x", question_set=queue,
                          arms=[ArmSpec(name="a"), ArmSpec(name="b")], consent="ok",
                          completion_code="C")  # fmt: skip
    assert "no gold items" in refused.value.message_dict["question_set"][0]
    assert not Experiment.objects.exists()


def test_arms_can_change_until_the_first_participant_joins_then_are_frozen():
    experiment = make_experiment()
    control = experiment.arms.get(position=0)
    arm_change(arm=control, time_limit_s=30)
    arm_add(experiment=experiment, spec=ArmSpec(name="Third arm"))
    join(experiment, "P1")
    experiment.refresh_from_db()
    assert experiment.frozen
    with pytest.raises(ExperimentFrozen, match="frozen: 1 participant joined"):
        arm_add(experiment=experiment, spec=ArmSpec(name="Fourth arm"))
    with pytest.raises(ExperimentFrozen, match="breaking the randomisation"):
        arm_change(arm=control, time_limit_s=60)
    control.refresh_from_db()
    assert control.time_limit_s == 30 and experiment.arms.count() == 3


@pytest.mark.parametrize("arm_count", [2, 3, 4])
def test_permuted_blocks_balance_every_full_block_and_follow_the_seed(arm_count):
    size = block_size(arm_count)
    sequence = [arm_for(11, arm_count, n) for n in range(size * 10)]
    for start in range(0, len(sequence), size):
        assert Counter(sequence[start : start + size]) == dict.fromkeys(range(arm_count), 2)
    assert sequence == [arm_for(11, arm_count, n) for n in range(size * 10)]
    assert sequence != [arm_for(12, arm_count, n) for n in range(size * 10)]


def test_joins_are_randomised_by_the_recorded_seed_and_a_returning_id_resumes():
    experiment = make_experiment(seed=1234)
    people = [join(experiment, f"P{n}") for n in range(8)]
    positions = [person.arm.position for person in people]
    assert positions == [arm_for(1234, 2, n) for n in range(8)]
    assert Counter(positions) == {0: 4, 1: 4}
    again = join(experiment, "P3")
    assert again.pk == people[3].pk and again.arm_id == people[3].arm_id
    assert not again.user.has_usable_password()
    assert not again.user.groups.exists()  # no role: annotations' pages and API refuse them


def test_a_closed_link_refuses_newcomers_and_returners():
    experiment = make_experiment()
    join(experiment, "P1")
    experiment_link_set(experiment=experiment, open=False)
    for external in ("P1", "P2"):
        with pytest.raises(LinkClosed):
            join(experiment, external)
    assert Participant.objects.count() == 1


def _answer(participant, lease, choice, *, after_s=1.0):
    return response_submit(
        participant=participant,
        assignment_id=lease.pk,
        value={"choice": choice},
        client_request_id=uuid.uuid4(),
        now=lease.created_at + timedelta(seconds=after_s),
    )


def test_a_label_after_the_limit_plus_grace_is_late_and_left_out_of_accuracy():
    from experiments.analysis import experiment_analysis

    experiment = make_experiment(time_limit_s=10)
    person = join(experiment, "P1")
    first = participant_lease(participant=person)
    on_time = _answer(person, first, "a", after_s=11.5)  # within the 2 s grace
    second = participant_lease(participant=person)
    late = _answer(person, second, "b", after_s=12.5)
    assert not on_time.late and late.late and late.correct
    figures = next(f for f in experiment_analysis(experiment).arms if f.arm == person.arm)
    assert (figures.accuracy.k, figures.accuracy.n, figures.late) == (1, 1, 1)


def test_a_retried_submit_stores_one_response():
    experiment = make_experiment()
    person = join(experiment, "P1")
    lease = participant_lease(participant=person)
    request_id = uuid.uuid4()
    for _ in range(2):
        response_submit(participant=person, assignment_id=lease.pk, value={"choice": "a"},
                        client_request_id=request_id)  # fmt: skip
    assert Response.objects.count() == 1


def test_time_out_only_after_the_limit_and_the_item_does_not_come_back():
    experiment = make_experiment(time_limit_s=5)
    person = join(experiment, "P1")
    lease = participant_lease(participant=person)
    with pytest.raises(TimeNotUp):
        response_time_out(participant=person, assignment_id=lease.pk,
                          now=lease.created_at + timedelta(seconds=3))  # fmt: skip
    timed = response_time_out(participant=person, assignment_id=lease.pk,
                              now=lease.created_at + timedelta(seconds=6))  # fmt: skip
    assert timed.timed_out and timed.label is None
    served = set()
    while (lease := participant_lease(participant=person)) is not None:
        served.add(lease.item_id)
        _answer(person, lease, "a")
    assert timed.arm_item.item_id not in served and len(served) == 3
    person.refresh_from_db()
    assert person.completed_at is not None


def test_another_participants_lease_is_not_yours():
    experiment = make_experiment(seed=3)
    first, second = join(experiment, "P1"), join(experiment, "P2")
    lease = participant_lease(participant=first)
    with pytest.raises(NotYours):
        _answer(second, lease, "a")
    with pytest.raises(NotYours):
        response_time_out(participant=second, assignment_id=lease.pk)


def test_an_unassisted_experiment_needs_no_model():
    experiment = make_experiment(assistance=Assistance.NONE, slug="plain")
    assert not any(arm.assisted or arm.model_config_id for arm in experiment.arms.all())
