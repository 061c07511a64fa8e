"""Question-bank experiments (experiments/protocols.py and the services that make them): arms
are protocols, consultancy and debate transcripts come from a debate batch run ahead, and
participants answer with a probability, scored on the correct answer."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from annotations.models import Queue
from debate.models import BatchStatus, DebateBatch
from experiments.errors import StudyNotReady
from experiments.models import Arm, ArmProtocol, Assistance, Experiment, Response
from experiments.protocols import arm_transcripts_collect, arm_transcripts_run
from experiments.services import (
    ArmSpec,
    arm_add,
    experiment_create,
    participant_join,
    participant_lease,
    response_submit,
)
from tests.debate.research_factories import BankQuestionFactory, QuestionBankFactory
from tests.experiments.conftest import (
    bank,
    bank_experiment,
    question_set,
    transcripts_ready,
)
from tests.factories import ModelConfigFactory

pytestmark = pytest.mark.django_db


def join(experiment, external_id):
    return participant_join(
        experiment=experiment, external_id=external_id, study_id="S1", session_id=f"s-{external_id}"
    )[0]


@pytest.fixture
def made(researcher, transcripts_sent, django_capture_on_commit_callbacks):
    """A bank experiment (direct, consultancy, debate) as committed: its batches made and its
    transcript jobs enqueued, not run."""
    with django_capture_on_commit_callbacks(execute=True):
        experiment = bank_experiment(researcher=researcher)
    return experiment


def arms_of(experiment):
    return {arm.protocol: arm for arm in Arm.objects.filter(experiment=experiment)}


def test_a_direct_arm_has_its_items_at_once_and_the_others_wait_for_their_batch(
    made, transcripts_sent
):
    arms = arms_of(made)
    direct, consultancy, debate = (arms[p] for p in ArmProtocol.values)
    assert direct.arm_items.count() == 4 and direct.items_ready_at is not None
    assert direct.queue.kind == "question_judgment" and direct.debate_batch is None
    for row in direct.arm_items.select_related("item", "bank_question"):
        payload = row.item.payload
        assert payload["turns"] == [] and payload["question"] == row.bank_question.question
        correct = payload[f"answer_{row.correct_side}"]
        assert correct == row.bank_question.options[row.bank_question.gold_index]
        assert "passage-secret" not in str(payload) and "Mira kept" not in str(payload)
    # The correct side is drawn per arm and question from the recorded seed: reproducible.
    for question_id, side in direct.arm_items.values_list("bank_question_id", "correct_side"):
        drawn = random.Random(f"{made.seed}:{direct.position}:{question_id}").choice("ab")
        assert side == drawn
    for arm in (consultancy, debate):
        assert arm.arm_items.count() == 0 and arm.items_ready_at is None
        batch = arm.debate_batch
        assert batch is not None and batch.status == BatchStatus.QUEUED
        spec = batch.spec
        assert spec["protocol"] == arm.protocol and spec["count"] == 4
        assert spec["debater_a_config_id"] == arm.model_config_id
    assert sorted(transcripts_sent) == sorted([consultancy.pk, debate.pk])
    # Nobody joins before the transcripts exist: a participant never waits for a model.
    with pytest.raises(StudyNotReady):
        join(made, "P1")


def test_the_transcript_job_runs_the_batch_and_makes_its_transcripts_the_arms_items(
    made, fake_debaters
):
    transcripts_ready(made)
    arms = arms_of(made)
    # One batched call per round and debater config: 4 questions a call, 2 rounds each.
    assert (
        fake_debaters
        == [(f"consultant-model-{made.slug}", 4)] * 2 + [(f"debater-model-{made.slug}", 8)] * 2
    )
    for protocol, speakers in (("consultancy", {"Consultant"}),
                               ("debate", {"Debater A", "Debater B"})):  # fmt: skip
        arm = arms[protocol]
        arm.refresh_from_db()
        assert arm.items_ready_at is not None and arm.debate_batch.status == BatchStatus.DONE
        rows = list(arm.arm_items.select_related("item", "debate", "bank_question"))
        assert len(rows) == 4
        for row in rows:
            payload = row.item.payload
            assert {turn["speaker"] for turn in payload["turns"]} == speakers
            assert len(payload["turns"]) == 2 * len(speakers)  # two rounds
            assert row.correct_side == row.debate.correct_side
            assert (payload["answer_a"], payload["answer_b"]) == (
                row.debate.answer_a,
                row.debate.answer_b,
            )
            assert "passage-secret" not in str(payload)
    # Collecting again, or a second delivery of the job, adds nothing.
    assert arm_transcripts_collect(arm=arms["debate"]) == 0
    arm_transcripts_run(arm_id=arms["debate"].pk)
    assert arms["debate"].arm_items.count() == 4
    assert join(made, "P1").arm.protocol in ArmProtocol.values


def test_a_probability_is_scored_on_the_correct_answer(made, fake_debaters):
    transcripts_ready(made)
    person = join(made, "P1")
    results = []
    while (lease := participant_lease(participant=person)) is not None:
        row = person.arm.arm_items.get(item=lease.item_id)
        # 70 % on the correct answer for the first two, 70 % on the wrong one after.
        right = len(results) < 2
        on_a = (row.correct_side == "a") == right
        response = response_submit(
            participant=person, assignment_id=lease.pk,
            value={"probability_a": 70 if on_a else 30}, client_request_id=uuid.uuid4(),
        )  # fmt: skip
        results.append((response.correct, response.probability_correct))
    assert results == [(True, 0.7), (True, 0.7), (False, 0.3), (False, 0.3)]
    assert Response.objects.filter(participant=person).count() == 4


def test_fifty_percent_is_not_a_correct_answer_and_a_bad_probability_is_refused(
    made, fake_debaters
):
    transcripts_ready(made)
    person = join(made, "P1")
    lease = participant_lease(participant=person)
    for bad in ({"probability_a": 0}, {"probability_a": 100}, {"probability_a": "50"},
                {"choice": "a"}):  # fmt: skip
        with pytest.raises(ValidationError):
            response_submit(participant=person, assignment_id=lease.pk, value=bad,
                            client_request_id=uuid.uuid4())  # fmt: skip
    response = response_submit(
        participant=person, assignment_id=lease.pk, value={"probability_a": 50},
        client_request_id=uuid.uuid4(),
    )  # fmt: skip
    assert (response.correct, response.probability_correct) == (False, 0.5)


# Stands for "a model config" in the parametrised specs (made inside the test).
NEEDS_CONFIG: Any = "config"


def _counts():
    return (Experiment.objects.count(), Arm.objects.count(), Queue.objects.count(),
            DebateBatch.objects.count())  # fmt: skip


@pytest.mark.parametrize(
    ("on", "arms", "field", "words"),
    [
        ("queue", [ArmSpec(name="a"), ArmSpec(name="b", protocol="direct")], "arms.1.protocol",
         "question set is a rating queue"),
        ("bank", [ArmSpec(name="a", protocol="direct"),
                  ArmSpec(name="b", assistance=Assistance.CRITIQUE, model_config=NEEDS_CONFIG)],
         "arms.1.assistance", "arms are protocols"),
        ("bank", [ArmSpec(name="a", protocol="direct"), ArmSpec(name="b")], "arms.1.protocol",
         "needs a protocol"),
        ("bank", [ArmSpec(name="a", protocol="direct"), ArmSpec(name="b", protocol="debate")],
         "arms.1.model_config", "speaks its transcripts"),
        ("bank", [ArmSpec(name="a", protocol="direct"), ArmSpec(name="b", protocol="consultancy")],
         "arms.1.model_config", "speaks its transcripts"),
        ("bank", [ArmSpec(name="a", protocol="direct"), ArmSpec(name="b", protocol="market")],
         "arms.1.protocol", "direct, consultancy, debate"),
        ("empty bank", [ArmSpec(name="a", protocol="direct"), ArmSpec(name="b", protocol="direct")],
         "question_bank", "has no questions"),
        ("bad bank", [ArmSpec(name="a", protocol="direct"), ArmSpec(name="b", protocol="direct")],
         "question_bank", "lines 2"),
        ("both", [ArmSpec(name="a", protocol="direct"), ArmSpec(name="b", protocol="direct")],
         "question_set", "one of them"),
        ("neither", [ArmSpec(name="a", protocol="direct"), ArmSpec(name="b", protocol="direct")],
         "question_set", "one of them"),
    ],
)  # fmt: skip
def test_bad_bank_designs_are_refused_clearly_and_create_nothing(on, arms, field, words):
    config = ModelConfigFactory()
    arms = [
        ArmSpec(name=s.name, assistance=s.assistance, protocol=s.protocol,
                model_config=config if s.model_config else None)
        for s in arms
    ]  # fmt: skip
    where = {}
    if on == "queue":
        where = {"question_set": question_set()}
    elif on == "bank":
        where = {"question_bank": bank()}
    elif on == "empty bank":
        where = {"question_bank": QuestionBankFactory()}
    elif on == "bad bank":
        broken = QuestionBankFactory()
        BankQuestionFactory(bank=broken, line=1)
        BankQuestionFactory(bank=broken, line=2, options=["only one"], gold_index=0)
        BankQuestionFactory(bank=broken, line=3, options=["a", "b"], gold_index=5)
        where = {"question_bank": broken}
    elif on == "both":
        where = {"question_set": question_set(), "question_bank": bank()}
    before = _counts()
    with pytest.raises(ValidationError) as refused:
        experiment_create(name="x", slug="x", arms=arms, consent="ok", completion_code="C",
                          **where)  # fmt: skip
    assert words in " ".join(refused.value.message_dict[field])
    assert _counts() == before


def test_an_arm_added_to_a_bank_experiment_is_a_protocol_and_frozen_arms_refuse(
    made, fake_debaters, transcripts_sent, django_capture_on_commit_callbacks
):
    with pytest.raises(ValidationError) as refused:
        arm_add(experiment=made, spec=ArmSpec(name="Helped", assistance=Assistance.CRITIQUE,
                                              model_config=ModelConfigFactory()))  # fmt: skip
    assert "arms are protocols" in str(refused.value)
    with django_capture_on_commit_callbacks(execute=True):
        added = arm_add(experiment=made, spec=ArmSpec(name="Second direct", protocol="direct"))
    assert added.arm_items.count() == 4
    transcripts_ready(made)
    join(made, "P1")
    from experiments.errors import ExperimentFrozen

    with pytest.raises(ExperimentFrozen):
        arm_add(experiment=made, spec=ArmSpec(name="Late", protocol="direct"))


def test_a_failed_batch_is_replaced_when_started_again(made, transcripts_sent, monkeypatch):
    from experiments.protocols import arm_transcripts_start

    debate = arms_of(made)["debate"]
    DebateBatch.objects.filter(pk=debate.debate_batch_id).update(status=BatchStatus.FAILED)
    debate.refresh_from_db()
    old = debate.debate_batch_id
    assert arm_transcripts_start(arm=debate).pk != old
    with pytest.raises(ValidationError):
        arm_transcripts_start(arm=arms_of(made)["direct"])


def test_a_late_answer_is_stored_late_and_left_out_of_the_accuracy(
    researcher, transcripts_sent, fake_debaters, django_capture_on_commit_callbacks
):
    from experiments.analysis import experiment_analysis

    with django_capture_on_commit_callbacks(execute=True):
        experiment = bank_experiment(
            researcher=researcher, protocols=("direct", "consultancy"), time_limit_s=5,
            slug="late",
        )  # fmt: skip
    transcripts_ready(experiment)
    person = join(experiment, "P1")
    lease = participant_lease(participant=person)
    response = response_submit(
        participant=person, assignment_id=lease.pk, value={"probability_a": 60},
        client_request_id=uuid.uuid4(), now=lease.created_at + timedelta(seconds=5 + 2 + 1),
    )  # fmt: skip
    assert response.late and response.probability_correct in (0.6, 0.4)
    figures = {f.arm.pk: f for f in experiment_analysis(experiment).arms}[person.arm_id]
    assert figures.late == 1 and figures.accuracy.n == 0
