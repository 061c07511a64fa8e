import math
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from debate import generation
from debate.generation import (
    SPEECH_STALE_AFTER,
    SpeechSuperseded,
    debate_transcript,
    speeches_requeue_stale,
)
from debate.models import DebateStatus, JudgeAction, Protocol, Speech, SpeechStatus, TurnOrder
from debate.services import debate_create, debate_prior_submit, judge_turn_submit, speech_retry
from tests.factories import DebateFactory, ModelConfigFactory


def speech_generate(*, speech_id: int) -> None:
    """One speech through the worker's path, as a task for one speech runs it."""
    generation.speeches_generate(speech_ids=[speech_id])


pytestmark = pytest.mark.django_db


def run_queued(debate) -> list[Speech]:
    """What the generation worker does: every queued speech of the round, in order."""
    speeches = list(debate.speeches.filter(status=SpeechStatus.QUEUED).order_by("pk"))
    for speech in speeches:
        speech_generate(speech_id=speech.pk)
    return speeches


def test_a_debate_from_prior_to_judgment(enqueued, django_capture_on_commit_callbacks):
    debate = DebateFactory()
    judge = debate.judge

    with django_capture_on_commit_callbacks(execute=True):
        debate_prior_submit(debate_id=debate.pk, judge=judge, probability_a=50)
    debate.refresh_from_db()
    assert debate.status == DebateStatus.GENERATING and debate.current_round == 1
    assert enqueued == [[s.pk for s in debate.speeches.all()]]  # both at once, one task

    run_queued(debate)
    debate.refresh_from_db()
    round_one = list(debate.speeches.filter(round=1))
    assert [s.side for s in round_one] == ["a", "b"]
    assert all(s.status == SpeechStatus.DONE and s.text for s in round_one), [
        (s.status, s.error) for s in round_one
    ]
    assert all(s.completion_tokens and s.config_snapshot["params"] for s in round_one)
    assert debate.status == DebateStatus.AWAITING_JUDGE

    judge_turn_submit(
        debate_id=debate.pk, judge=judge, probability_a=60, action=JudgeAction.CONTINUE,
        message="Debater B, what colour is the shed?",
    )  # fmt: skip
    debate.refresh_from_db()
    speech_b2 = debate.speeches.get(round=2, side="b")
    seen = [entry.text for entry in debate_transcript(debate, before=speech_b2)]
    assert "Debater B, what colour is the shed?" in seen  # the question reaches round 2
    run_queued(debate)

    judge_turn_submit(
        debate_id=debate.pk, judge=judge, probability_a=70, action=JudgeAction.END,
        rationale="A quoted the passage; B did not.",
    )  # fmt: skip
    debate.refresh_from_db()
    judgment = debate.judgment
    assert debate.status == DebateStatus.JUDGED
    assert (judgment.probability_a, judgment.judge_turns) == (70, 1)
    assert judgment.score == pytest.approx(-0.5646, abs=1e-3)  # log2(0.7) - 0.05


def test_simultaneous_speeches_do_not_see_each_other_but_sequential_ones_do():
    for order, sees_a in [(TurnOrder.SIMULTANEOUS, False), (TurnOrder.SEQUENTIAL, True)]:
        debate = DebateFactory(turn_order=order)
        debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
        speech_a = debate.speeches.get(side="a")
        speech_generate(speech_id=speech_a.pk)
        speech_b = debate.speeches.get(side="b")
        transcript = debate_transcript(debate, before=speech_b)
        assert any(entry.speaker == "Debater A" for entry in transcript) is sees_a


def test_sequential_rounds_start_b_after_a(enqueued, django_capture_on_commit_callbacks):
    debate = DebateFactory(turn_order=TurnOrder.SEQUENTIAL)
    with django_capture_on_commit_callbacks(execute=True):
        debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    speech_a, speech_b = debate.speeches.order_by("side")
    assert enqueued == [[speech_a.pk]]
    with django_capture_on_commit_callbacks(execute=True):
        speech_generate(speech_id=speech_a.pk)
    assert enqueued == [[speech_a.pk], [speech_b.pk]]


def test_consultancy_assigns_the_consultant_at_random_and_records_it(researcher):
    config = ModelConfigFactory()
    sides = []
    for _ in range(200):
        debate = DebateFactory.build(protocol=Protocol.CONSULTANCY, debater_a_config=config)
        debate.judge.save()
        debate.debater_b_config = config
        sides.append(debate_create(debate=debate, created_by=researcher).consultant_side)
    assert set(sides) == {"a", "b"}
    assert 60 <= sides.count("a") <= 140  # about half honest; P(outside) < 1e-6


def test_consultancy_has_one_speech_a_round():
    debate = DebateFactory(protocol=Protocol.CONSULTANCY, consultant_side="b")
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    assert [s.side for s in debate.speeches.all()] == ["b"]


@pytest.mark.parametrize(
    ("setup", "turn", "message"),
    [
        ({}, {"action": "end", "rationale": ""}, "rationale is required"),
        ({"rounds_mode": "fixed"}, {"action": "end", "rationale": "x"}, "runs all 2 rounds"),
        ({"max_rounds": 1}, {"action": "continue"}, "last round"),
        ({}, {"action": "surrender"}, "Unknown action"),
        ({}, {"action": "continue", "probability_a": 100}, "from 1 to 99%"),
    ],
)
def test_judge_rules_are_enforced(setup, turn, message):
    debate = DebateFactory(**setup)
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    debate.speeches.update(status=SpeechStatus.DONE, text="...")
    debate.__class__.objects.filter(pk=debate.pk).update(status=DebateStatus.AWAITING_JUDGE)
    with pytest.raises(ValidationError, match=message):
        judge_turn_submit(debate_id=debate.pk, judge=debate.judge, **({"probability_a": 50} | turn))
    assert not hasattr(debate.__class__.objects.get(pk=debate.pk), "judgment")


def test_only_the_judge_in_the_right_state_can_act(annotator2):
    debate = DebateFactory()
    with pytest.raises(ValidationError, match="Only the assigned judge"):
        debate_prior_submit(debate_id=debate.pk, judge=annotator2, probability_a=50)
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    with pytest.raises(ValidationError, match="not open now"):
        debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    assert debate.judge_turns.count() == 1


def test_a_failed_speech_shows_why_and_a_retry_regenerates_it():
    debate = DebateFactory(debater_a_config=ModelConfigFactory(name="gone", model="/no/model"))
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    speech = debate.speeches.get(side="a")
    speech_generate(speech_id=speech.pk)
    speech.refresh_from_db()
    assert speech.status == SpeechStatus.FAILED and speech.error.startswith("[gone] ")

    debate.debater_a_config.model = "bundled:smollm2-135m-instruct"
    debate.debater_a_config.save()
    speech_retry(speech_id=speech.pk)
    speech_generate(speech_id=speech.pk)
    speech.refresh_from_db()
    assert speech.status == SpeechStatus.DONE and speech.text and not speech.error


def test_a_speech_cut_off_by_a_dead_worker_is_retried_without_duplicated_text():
    debate = DebateFactory()
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    speech = debate.speeches.get(side="a")
    # What a worker killed mid-speech leaves behind: streaming, with half a speech saved, and
    # a heartbeat that stopped more than SPEECH_STALE_AFTER ago.
    silent = timezone.now() - SPEECH_STALE_AFTER - timedelta(seconds=1)
    Speech.objects.filter(pk=speech.pk).update(
        status=SpeechStatus.STREAMING, text="HALF SPEECH ", heartbeat_at=silent
    )
    speech_generate(speech_id=speech.pk)  # a redelivered task finds nothing to claim
    speech.refresh_from_db()
    assert speech.text == "HALF SPEECH "

    speech_retry(speech_id=speech.pk)
    speech_generate(speech_id=speech.pk)
    speech.refresh_from_db()
    assert speech.status == SpeechStatus.DONE
    assert "HALF SPEECH" not in speech.text


def test_a_finished_speech_cannot_be_retried():
    debate = DebateFactory()
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    speech = debate.speeches.get(side="a")
    Speech.objects.filter(pk=speech.pk).update(status=SpeechStatus.DONE, text="done")
    with pytest.raises(ValidationError, match="Only a failed speech, .* this one is done"):
        speech_retry(speech_id=speech.pk)


def test_a_speech_a_worker_is_writing_is_not_retried(enqueued, django_capture_on_commit_callbacks):
    debate = DebateFactory()
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    speech = debate.speeches.get(side="a")
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(ValidationError, match="this one is queued, and a worker will start"):
            speech_retry(speech_id=speech.pk)
        beat = timezone.now() - timedelta(seconds=5)
        Speech.objects.filter(pk=speech.pk).update(
            status=SpeechStatus.STREAMING, text="so far ", heartbeat_at=beat
        )
        with pytest.raises(ValidationError) as refused:
            speech_retry(speech_id=speech.pk)
    assert "a worker is writing this one now (it last wrote 5 s ago)" in str(refused.value)
    assert "a second generation" in str(refused.value)
    speech.refresh_from_db()
    assert (speech.status, speech.text, enqueued) == (SpeechStatus.STREAMING, "so far ", [])
    # Silent for SPEECH_STALE_AFTER, as the sweeper sees it: now a retry starts it again.
    stale = timezone.now() - SPEECH_STALE_AFTER - timedelta(seconds=1)
    Speech.objects.filter(pk=speech.pk).update(heartbeat_at=stale)
    with django_capture_on_commit_callbacks(execute=True):
        speech_retry(speech_id=speech.pk)
    speech.refresh_from_db()
    assert (speech.status, speech.text, enqueued) == (SpeechStatus.QUEUED, "", [[speech.pk]])


def test_the_judges_opening_message_reaches_both_debaters_before_round_one():
    debate = DebateFactory()
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50,
                        message="Both of you: quote the passage.")  # fmt: skip
    for speech in debate.speeches.filter(round=1):
        transcript = debate_transcript(debate, before=speech)
        assert [(entry.round, entry.speaker, entry.text) for entry in transcript] == [
            (0, "Judge", "Both of you: quote the passage.")
        ]


def test_a_consultancy_from_prior_to_judgment():
    debate = DebateFactory(protocol=Protocol.CONSULTANCY, consultant_side="b", correct_side="a",
                           debater_b_config=None)  # fmt: skip
    judge = debate.judge
    debate_prior_submit(debate_id=debate.pk, judge=judge, probability_a=50)
    [speech] = run_queued(debate)
    speech.refresh_from_db()
    assert (speech.side, speech.status) == ("b", SpeechStatus.DONE)

    judge_turn_submit(debate_id=debate.pk, judge=judge, probability_a=40, action="continue",
                      message="Consultant, quote the passage.")  # fmt: skip
    debate.refresh_from_db()
    [second] = debate.speeches.filter(round=2)
    transcript = debate_transcript(debate, before=second)
    assert [entry.speaker for entry in transcript] == ["Consultant", "Judge"]
    run_queued(debate)

    judge_turn_submit(debate_id=debate.pk, judge=judge, probability_a=80, action="end",
                      rationale="The consultant never quoted anything.")  # fmt: skip
    debate.refresh_from_db()
    assert debate.status == DebateStatus.JUDGED
    assert debate.judgment.score == pytest.approx(math.log2(0.8) - 0.05)


def test_a_speech_whose_worker_fell_silent_starts_again_by_itself(
    enqueued, django_capture_on_commit_callbacks
):
    debate = DebateFactory()
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    dead, alive = debate.speeches.order_by("side")
    now = timezone.now()
    # A worker killed mid-speech: streaming, half a speech saved, then silence.
    Speech.objects.filter(pk=dead.pk).update(
        status=SpeechStatus.STREAMING, text="HALF SPEECH ", attempt=1,
        heartbeat_at=now - timedelta(minutes=3),
    )  # fmt: skip
    Speech.objects.filter(pk=alive.pk).update(
        status=SpeechStatus.STREAMING, text="still going", attempt=1,
        heartbeat_at=now - timedelta(seconds=10),
    )  # fmt: skip
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert speeches_requeue_stale(now=now) == 1
        assert speeches_requeue_stale(now=now) == 0  # a second run finds nothing more
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, dead.text, enqueued) == (SpeechStatus.QUEUED, "", [[dead.pk]])
    assert (alive.status, alive.text) == (SpeechStatus.STREAMING, "still going")

    speech_generate(speech_id=dead.pk)
    dead.refresh_from_db()
    assert dead.status == SpeechStatus.DONE and dead.attempt == 2
    assert dead.text and "HALF SPEECH" not in dead.text


def test_a_worker_given_up_on_writes_nothing_more_and_stops(enqueued, monkeypatch):
    debate = DebateFactory()
    debate_prior_submit(debate_id=debate.pk, judge=debate.judge, probability_a=50)
    speech = debate.speeches.get(side="a")
    save = generation.speech_text_save
    refused: list[str] = []

    def save_after_a_takeover(speech_id, attempt, text, tokens):
        # The worker stalls here long enough for the sweeper to restart the speech.
        if not refused:
            assert speeches_requeue_stale(now=timezone.now() + timedelta(hours=1)) == 1
        try:
            save(speech_id, attempt, text, tokens)
        except SpeechSuperseded as error:
            refused.append(str(error))
            raise

    monkeypatch.setattr(generation, "speech_text_save", save_after_a_takeover)
    speech_generate(speech_id=speech.pk)  # returns quietly: its attempt was superseded
    speech.refresh_from_db()
    assert refused == [f"speech {speech.pk} is no longer on attempt 1"]
    assert (speech.status, speech.text, speech.attempt) == (SpeechStatus.QUEUED, "", 1)

    monkeypatch.setattr(generation, "speech_text_save", save)
    speech_generate(speech_id=speech.pk)
    speech.refresh_from_db()
    assert speech.status == SpeechStatus.DONE and speech.attempt == 2 and speech.text
