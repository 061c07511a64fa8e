"""The automatic judge: P(A correct) = σ(r_A − r_B) on each finished debate, from the newest
active reward model that reads a debate-judgment queue, shown to researchers and never to
the judge."""

from __future__ import annotations

import math
from typing import cast
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings
from django.urls import reverse

from annotations.kinds import PairwisePayload, QueueKind
from annotations.services import NewItem
from config.asgi import application
from debate.kinds import DebatePayload, DebateTurn
from debate.models import Debate, DebateStatus
from rewards.auto_judge import auto_judge_version, debate_scores_fill
from rewards.models import DebateScore, RewardModel, RewardVersion, Status
from rewards.services import reward_model_save
from tests.annotations.factories import make_queue
from tests.helpers import ORIGIN, Api, session_cookie, signed_in
from tests.rewards.factories import (
    DEBATE_KIND,
    DEBATE_RUDE,
    active_version,
    add_items,
    label_all,
    over_debate,
    preference_items,
    preference_queue,
    reward_model_for,
    run_now,
)

MARK = 'id="auto-judge"'


def debate_judgment_items(n: int) -> list[tuple[NewItem, str]]:
    """The learnable preference data as debate-judgment items (the answers carry it)."""
    out = []
    for item, side in preference_items(n, seed=5):
        pair = cast(PairwisePayload, item.payload)
        payload = DebatePayload(
            question=pair.prompt, answer_a=pair.response_a, answer_b=pair.response_b,
            turns=[DebateTurn(speaker="Debater A", text="It is so.")],
        )  # fmt: skip
        out.append((NewItem(payload=payload, external_id=item.external_id), side))
    return out


def debate_judgment_model(annotator, name: str = "debate rm") -> RewardModel:
    queue = make_queue(members=[annotator], kind=QueueKind.DEBATE_JUDGMENT, labels_per_item=1)
    label_all(queue, annotator, add_items(queue, debate_judgment_items(60)))
    return reward_model_for(queue, name=name)


def page(user, debate: Debate) -> str:
    return signed_in(user).get(reverse("debate:detail", args=[debate.pk])).content.decode()


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.fixture
def trained(annotator):
    reward_model = debate_judgment_model(annotator)
    version = run_now(reward_model)
    assert version.status == Status.ACTIVE
    reward_model.refresh_from_db()
    return reward_model


def test_the_probability_is_sigmoid_of_the_scoring_apis_rewards(trained, annotator, researcher):
    debate = over_debate(judge=annotator)
    finished = over_debate(judge=annotator, status=DebateStatus.FINISHED, correct_side="b")
    live = over_debate(judge=annotator, status=DebateStatus.AWAITING_JUDGE)
    assert debate_scores_fill() == 2  # the live debate is not over: not scored
    assert debate_scores_fill() == 0  # nothing twice
    assert not DebateScore.objects.filter(debate_id=live.pk).exists()
    version = trained.active_version
    score = DebateScore.objects.get(version=version, debate_id=debate.pk)

    # The same texts through the scoring API: question + each side's answer and speeches.
    items = [
        {
            "prompt": "Explain the tides.",
            "response": f"{DEBATE_KIND}\n\nKindly: the moon pulls the sea.",
        },
        {"prompt": "Explain the tides.", "response": f"{DEBATE_RUDE}\n\nWhatever. Moon."},
    ]
    body = Api(researcher).post(f"/reward-models/{trained.pk}/score", {"items": items}).json()
    r_a, r_b = body["rewards"]
    assert (score.reward_a, score.reward_b) == pytest.approx((r_a, r_b), abs=1e-5)
    assert score.probability_a == pytest.approx(sigmoid(r_a - r_b), abs=1e-6)
    assert score.probability_a > 0.5  # the kind side, as the labels taught

    html = page(researcher, debate)
    percent = round(100 * score.probability_a)
    assert f"P(A correct) <strong>{percent}%</strong> · B {100 - percent}%" in html
    assert "Leans to the correct answer (A)." in html
    assert f"{trained.name}</a> v1" in html
    assert "Leans to the wrong answer (A; correct: B)." in page(researcher, finished)
    assert MARK not in page(researcher, live)


def test_the_block_says_when_a_debate_was_in_the_training_labels(trained, annotator, researcher):
    from annotations.models import Item, Label
    from rewards.models import InLabels, SplitGroup

    version = trained.active_version
    sides = dict(SplitGroup.objects.filter(reward_model=trained).values_list("group", "heldout"))
    items = list(Item.objects.filter(queue__in=trained.queues.all()).order_by("pk"))
    trained_on = next(item for item in items if sides[f"item:{item.pk}"] is False)
    held_out = next(item for item in items if sides[f"item:{item.pk}"] is True)

    def debate_of(item):
        """A debate with the item's question and answers, its labelled side correct."""
        choice = Label.objects.get(item=item).value["choice"]
        p = item.payload
        return over_debate(judge=annotator, question=p["question"], answer_a=p["answer_a"],
                           answer_b=p["answer_b"], correct_side=choice)  # fmt: skip

    in_sample, held, fresh = (
        debate_of(trained_on),
        debate_of(held_out),
        over_debate(judge=annotator),
    )
    assert debate_scores_fill() == 3
    scores = {s.debate_id: s for s in DebateScore.objects.filter(version=version)}
    assert scores[in_sample.pk].in_labels == InLabels.TRAIN
    assert scores[held.pk].in_labels == InLabels.HELDOUT
    assert scores[fresh.pk].in_labels == InLabels.NONE

    html = page(researcher, in_sample)
    assert "<strong>In sample:</strong>" in html and "a fit to a label, not a result" in html
    held_html = page(researcher, held)
    assert "<strong>Out of sample:</strong> this debate is among v1's held-out" in held_html
    assert "this debate is not among v1's labels" in page(researcher, fresh)
    # Its accuracy counts only the two debates it was not trained on.
    right = sum(
        (scores[d.pk].probability_a > 0.5) == (d.correct_side == "a") for d in (held, fresh)
    )
    assert f"({right} of n = 2 debates with a known correct answer; 95 % CI " in html
    assert "1 debate in its training labels left out" in html

    # Scores kept before this was looked up get it with the next fill.
    DebateScore.objects.filter(version=version).update(in_labels="", correct_side="")
    assert "not looked up yet" in page(researcher, in_sample)
    assert debate_scores_fill() == 0
    assert DebateScore.objects.get(version=version, debate_id=in_sample.pk).in_labels == "train"
    assert DebateScore.objects.get(version=version, debate_id=fresh.pk).correct_side == "a"


def test_a_new_promotion_is_scored_again_and_shown(
    trained, annotator, researcher, django_capture_on_commit_callbacks
):
    debate = over_debate(judge=annotator)
    debate_scores_fill()
    with (
        mock.patch("rewards.tasks.debate_scores_fill_task.delay") as fill_enqueued,
        mock.patch("rewards.tasks.reward_scores_refresh_task.delay"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        version = run_now(trained)  # the same labels again: as accurate, so promoted
    assert version.status == Status.ACTIVE and version.number == 2
    fill_enqueued.assert_called_once_with()  # on promotion

    html = page(researcher, debate)
    assert "Not scored yet by" in html and f"{trained.name}</a> v2" in html
    assert debate_scores_fill() == 1
    html = page(researcher, debate)
    assert "P(A correct) <strong>" in html and f"{trained.name}</a> v2" in html
    assert DebateScore.objects.filter(debate_id=debate.pk).count() == 2  # v1's is kept


def test_the_rule_picks_the_newest_active_version_reading_debate_judgments(annotator):
    assert auto_judge_version() is None
    pairwise = reward_model_save(
        reward_model=RewardModel(name="pairs only"),
        queues=[preference_queue(members=[annotator])], user=None,
    )  # fmt: skip
    active_version(pairwise)
    assert auto_judge_version() is None  # reads no debate-judgment queue

    def debate_model(name: str) -> RewardModel:
        queue = make_queue(members=[annotator], kind=QueueKind.DEBATE_JUDGMENT)
        return reward_model_save(reward_model=RewardModel(name=name), queues=[queue], user=None)

    first, second = debate_model("first"), debate_model("second")
    older = active_version(first)
    newer = active_version(second)
    assert auto_judge_version() == newer
    RewardVersion.objects.filter(pk=newer.pk).update(status=Status.RETIRED)
    assert auto_judge_version() == older


def test_without_a_reward_model_the_block_says_so(annotator, researcher):
    debate = over_debate(judge=annotator)
    assert debate_scores_fill() == 0
    html = page(researcher, debate)
    assert MARK in html and "No automatic judgment" in html


@pytest.fixture
def scored(annotator):
    """A judged debate with an automatic judgment by an active version."""
    queue = make_queue(members=[annotator], kind=QueueKind.DEBATE_JUDGMENT)
    reward_model = reward_model_save(reward_model=RewardModel(name="rm"), queues=[queue],
                                     user=None)  # fmt: skip
    version = active_version(reward_model)
    debate = over_debate(judge=annotator)
    DebateScore.objects.create(version=version, debate_id=debate.pk, reward_a=1.5,
                               reward_b=-0.5, probability_a=sigmoid(2.0))  # fmt: skip
    return debate


def test_researchers_see_the_block_and_the_judge_never_does(scored, annotator, users):
    assert "P(A correct) <strong>88%</strong> · B 12%" in page(users["researcher"], scored)
    assert "P(A correct) <strong>88%</strong>" in page(users["admin"], scored)
    judge_page = page(annotator, scored)
    assert "Correct answer" in judge_page  # judged: the judge's own view is complete
    for text in (MARK, "Automatic judge", "P(A correct)", "88%", "1.500", "auto-judge"):
        assert text not in judge_page


def test_a_researcher_who_judges_sees_the_judges_view_without_it(scored, researcher):
    Debate.objects.filter(pk=scored.pk).update(judge=researcher)
    html = page(researcher, scored)
    assert "Correct answer" in html and MARK not in html and "P(A correct)" not in html


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_websocket_frames_to_the_judge_never_carry_it(scored, annotator):
    headers = [ORIGIN, (b"cookie", session_cookie(annotator))]
    socket = WebsocketCommunicator(application, f"/ws/debates/{scored.pk}/", headers=headers)

    async def snapshot() -> str:
        assert (await socket.connect())[0]
        frame = await socket.receive_from(timeout=5)
        await socket.disconnect()
        return frame

    frame = async_to_sync(snapshot)()
    assert "Correct answer" in frame
    assert MARK not in frame and "P(A correct)" not in frame and "Automatic judge" not in frame


def test_beat_fills_scores_every_minute_on_the_training_queue():
    [entry] = [
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "rewards.tasks.debate_scores_fill_task"
    ]
    assert entry["schedule"] == 60.0
    from config.celery import app

    route = app.amqp.router.route({}, "rewards.tasks.debate_scores_fill_task")
    assert route["queue"].name == "training"
