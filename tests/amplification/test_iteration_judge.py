"""The reward-model judge of an iteration's blind pairs: a researcher picks a reward model,
the worker scores each pair's two answers with its active version (the scoring API's numbers),
and the line's page shows, beside people's win rates, the share of questions on which the
reward model prefers the first side, with n, a Wilson interval, the method and the version.
Researchers only: the item a person rates carries none of it."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.test import TestCase
from django.urls import reverse

from amplification.iteration_judge import (
    iteration_judge,
    iteration_judge_start,
    iteration_pairs_score,
)
from amplification.iterations import COMPARED, iteration_evaluate, iteration_to_queue
from amplification.models import Iteration, IterationLine, IterationPair, JudgeStatus, Node, Tree
from amplification.tasks import iteration_judge_task
from annotations.models import Item, Queue
from rewards.models import RewardModel, RewardVersion, Status
from tests.amplification.test_iterations import distilled, grow_all
from tests.amplification.test_iterations import line as line  # noqa: F401 (a fixture)
from tests.amplification.test_iterations import no_worker as no_worker  # noqa: F401
from tests.amplification.test_iterations import trees as trees  # noqa: F401
from tests.annotations.factories import make_queue
from tests.helpers import Api, signed_in
from tests.rewards.factories import active_version, preference_queue, reward_model_for, run_now
from tests.rewards.factories import trained_model as rm_trained_on

pytestmark = pytest.mark.django_db

# What the reward model the tests train learned: kind beats rude (tests/rewards/factories.py).
KIND = "Happy to help! Here is a clear explanation of {q}, step by step, with an example."
KIND_TOO = "Great question! I'll walk you through {q} and why, gently and clearly."
RUDE = "Ugh, {q}? Look it up yourself, this is a stupid question."
ANSWERS = {"amplified": KIND, "distilled": KIND_TOO, "direct": RUDE}


@pytest.fixture(autouse=True)
def reward_models_dir(settings: Any, tmp_path: Path) -> Path:
    settings.REWARD_MODELS_DIR = tmp_path / "reward-models"
    return settings.REWARD_MODELS_DIR


@pytest.fixture
def queued(fake, line, researcher, settings, annotator) -> tuple[Iteration, Queue]:  # noqa: F811
    """Iteration 1 with its held-out answers in a pairwise queue the annotator works in: the
    amplified answer kind, the distilled one kind too, the direct one rude."""
    first = line.iterations.get()
    distilled(first, researcher, settings)
    iteration_evaluate(iteration_id=first.pk, user=researcher)
    grow_all()
    for tree in Tree.objects.exclude(iteration_role="train"):
        text = ANSWERS[tree.iteration_role].format(q=tree.question.rstrip("?").lower())
        Node.objects.filter(tree=tree, parent=None).update(answer=text, composed_answer=text)
    queue = make_queue(members=[annotator], kind="pairwise", labels_per_item=1)
    assert iteration_to_queue(iteration_id=first.pk, queue=queue) == 6
    return first, queue


def page(user: Any, line: IterationLine) -> str:  # noqa: F811
    url = reverse("amplification:iteration_line", args=[line.pk])
    return signed_in(user).get(url).content.decode()


def start(iteration: Iteration, reward_model: RewardModel) -> RewardVersion:
    """The service, with the task it sends on commit recorded rather than sent."""
    with (
        mock.patch("amplification.tasks.iteration_judge_task.delay") as send,
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        version = iteration_judge_start(iteration_id=iteration.pk, reward_model=reward_model)
    send.assert_called_once_with(iteration.pk)
    return version


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_the_task_runs_on_the_training_queue_beside_the_reward_scoring():
    from config.celery import app

    route = app.amqp.router.route({}, "amplification.tasks.iteration_judge_task")
    assert route["queue"].name == "training"
    assert app.amqp.router.route({}, "amplification.tasks.tree_expand_task")["queue"].name == (
        "generation"
    )


def test_a_trained_reward_model_judges_the_pairs_as_the_scoring_api_scores(
    queued, annotator, researcher, line  # noqa: F811
):  # fmt: skip
    iteration, queue = queued
    reward_model = rm_trained_on(annotator)
    version = run_now(reward_model)
    assert version.status == Status.ACTIVE
    reward_model.refresh_from_db()
    assert "No reward model is chosen" in page(researcher, line)

    assert start(iteration, reward_model) == version
    iteration.refresh_from_db()
    assert iteration.judge_status == JudgeStatus.QUEUED and iteration.reward_model == reward_model
    assert f"Scoring with {reward_model.name} v1" in page(researcher, line)
    assert iteration_judge_task(iteration.pk) == 6

    pairs = list(IterationPair.objects.select_related("item").order_by("pk"))
    assert {p.judge_version for p in pairs} == {version}
    # Each side scored as (question, the answer people see), through the scoring API's numbers.
    items = [{"prompt": p.item.payload["prompt"], "response": p.item.payload[f"response_{side}"]}
             for p in pairs for side in "ab"]  # fmt: skip
    api = Api(researcher).post(f"/reward-models/{reward_model.pk}/score", {"items": items}).json()
    for n, pair in enumerate(pairs):
        r_a, r_b = api["rewards"][2 * n], api["rewards"][2 * n + 1]
        p_a = sigmoid(r_a - r_b)
        first_on_a = pair.a_role == COMPARED[pair.comparison][0]
        assert pair.judge_p_first == pytest.approx(p_a if first_on_a else 1 - p_a, abs=1e-5)
    # The kind answer wins wherever it sits: the roles, not the sides.
    judge = iteration_judge(iteration)
    assert (judge.rates["amplified-direct"].k, judge.rates["amplified-direct"].n) == (2, 2)
    assert (judge.rates["distilled-direct"].k, judge.rates["distilled-direct"].n) == (2, 2)
    assert judge.scored == 6 and not judge.stale

    html = page(researcher, line)
    block = html[html.index('id="iteration-1-wins"') :]
    row = re.search(r'data-comparison="amplified-direct">(.*?)</tr>', block, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
    assert cells[5:] == ["100 %", "34–100 %", "2"]  # the reward model's: share, Wilson, n
    assert "Reward model v1: first side wins" in block
    assert f"{reward_model.name}</a> v1: 6 of 6 pairs." in block
    assert "σ(r_first − r_second)" in block and "Wilson 95 % interval" in block

    # The person rating the pairs sees none of it: the item, and the labelling page's bytes.
    assert all(set(item.payload) == {"prompt", "response_a", "response_b", "system"}
               for item in Item.objects.filter(queue=queue))  # fmt: skip
    labelling = signed_in(annotator).get(reverse("annotations:label", args=[queue.pk]))
    assert labelling.status_code == 200
    body = labelling.content
    assert any(question.encode() in body for question in line.held_out)  # the item is shown
    for secret in (reward_model.name, "Reward model", "reward model", "σ(", "judge_p", "34–100"):
        assert secret.encode() not in body, secret

    # A new version goes live (the same checkpoint, promoted again as v2): the page says the
    # figures are v1's; scoring again replaces every pair's reading with v2's.
    RewardVersion.objects.filter(pk=version.pk).update(status=Status.RETIRED)
    second = RewardVersion.objects.create(
        reward_model=reward_model, number=2, speed=version.speed, trigger=version.trigger,
        status=Status.ACTIVE, artifact_path=version.artifact_path,
        hyperparameters=version.hyperparameters,
    )  # fmt: skip
    RewardModel.objects.filter(pk=reward_model.pk).update(active_version=second)
    assert "active version is v2: score again to replace them" in page(researcher, line)
    start(iteration, reward_model)
    waiting = page(researcher, line)
    assert f"Scoring with {reward_model.name} v2" in waiting and "score again" not in waiting
    assert iteration_pairs_score(iteration_id=iteration.pk) == 6
    assert set(IterationPair.objects.values_list("judge_version", flat=True)) == {second.pk}
    html = page(researcher, line)
    assert "Reward model v2: first side wins" in html and "score again" not in html


def test_a_version_without_its_checkpoint_fails_and_keeps_the_old_readings(
    queued, annotator, researcher, line  # noqa: F811
):  # fmt: skip
    iteration, _queue = queued
    reward_model = reward_model_for(preference_queue(members=[annotator]), name="no files")
    old = active_version(reward_model, number=1)
    IterationPair.objects.update(judge_version=old, judge_p_first=0.75)
    RewardVersion.objects.filter(pk=old.pk).update(status=Status.RETIRED)
    newer = active_version(reward_model, number=2)  # a row, but no checkpoint on disk
    start(iteration, reward_model)
    assert iteration_pairs_score(iteration_id=iteration.pk) == 0
    iteration.refresh_from_db()
    assert iteration.judge_status == JudgeStatus.FAILED
    assert "Version 2 has no checkpoint" in iteration.judge_error
    assert set(IterationPair.objects.values_list("judge_version", "judge_p_first")) == {
        (old.pk, 0.75)
    }
    html = page(researcher, line)
    assert "The last scoring failed: Version 2 has no checkpoint" in html
    assert "no files's active version is v2: score again" in html.replace("&#x27;", "'")
    assert newer.pk != old.pk


# --- the view ----------------------------------------------------------------------------
def judge_url(line: IterationLine, number: int = 1) -> str:  # noqa: F811
    return reverse("amplification:iteration_judge", args=[line.pk, number])


def test_choosing_a_reward_model_with_no_active_version_is_refused_and_changes_nothing(
    queued, annotator, researcher, line  # noqa: F811
):  # fmt: skip
    iteration, _queue = queued
    idle = reward_model_for(preference_queue(members=[annotator]), name="<b>idle</b>")
    with (
        mock.patch("amplification.tasks.iteration_judge_task.delay") as send,
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        response = signed_in(researcher).post(judge_url(line), {"reward_model": idle.pk})
        bad = signed_in(researcher).post(judge_url(line), {"reward_model": "x"})
        missing = signed_in(researcher).post(judge_url(line), {"reward_model": idle.pk + 99})
    assert response.status_code == 400
    html = response.content.decode()
    assert "&lt;b&gt;idle&lt;/b&gt; has no active version" in html and "<b>idle</b>" not in html
    assert bad.status_code == missing.status_code == 400
    send.assert_not_called()
    iteration.refresh_from_db()
    assert iteration.reward_model is None and iteration.judge_status == JudgeStatus.NONE


def test_choosing_from_the_page_sends_the_scoring(queued, annotator, researcher, line):  # noqa: F811
    iteration, _queue = queued
    reward_model = reward_model_for(preference_queue(members=[annotator]), name="chosen")
    active_version(reward_model, number=3)
    with (
        mock.patch("amplification.tasks.iteration_judge_task.delay") as send,
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        response = signed_in(researcher).post(
            judge_url(line), {"reward_model": reward_model.pk}, follow=True
        )
    assert response.status_code == 200
    assert "Scoring iteration 1&#x27;s blind pairs with chosen v3." in response.content.decode()
    send.assert_called_once_with(iteration.pk)
    iteration.refresh_from_db()
    assert iteration.reward_model == reward_model and iteration.judge_status == "queued"


def test_the_judge_is_for_researchers_only(queued, annotator, researcher, line):  # noqa: F811
    reward_model = reward_model_for(preference_queue(members=[annotator]), name="chosen")
    active_version(reward_model)
    with (
        mock.patch("amplification.tasks.iteration_judge_task.delay") as send,
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        refused = signed_in(annotator).post(judge_url(line), {"reward_model": reward_model.pk})
        wrong_method = signed_in(researcher).get(judge_url(line))
        no_iteration = signed_in(researcher).post(
            judge_url(line, 7), {"reward_model": reward_model.pk}
        )
    assert refused.status_code in (403, 404)
    assert wrong_method.status_code == 405 and no_iteration.status_code == 404
    send.assert_not_called()
    assert not Iteration.objects.exclude(reward_model=None).exists()


def test_no_pairs_yet_is_refused(line, annotator):  # noqa: F811
    reward_model = reward_model_for(preference_queue(members=[annotator]), name="early")
    active_version(reward_model)
    iteration = line.iterations.get()
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="no blind pairs to judge yet"):
        iteration_judge_start(iteration_id=iteration.pk, reward_model=reward_model)
    iteration.refresh_from_db()
    assert iteration.reward_model is None
