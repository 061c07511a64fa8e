"""Tree expansions and reward-model trainings on the operations page's job list
(core/jobs.py): listed while queued, running or lately failed; a failed one can be retried."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from amplification.models import Tree, TreeStatus
from core.jobs import job_sources
from rewards.models import RewardModel, RewardVersion, Speed, Status, Trigger
from rewards.services import reward_model_save
from tests.factories import ModelConfigFactory
from tests.helpers import signed_in
from tests.rewards.factories import preference_queue


def test_trees_and_trainings_are_job_sources():
    assert {"trees", "reward-training"} <= {source.name for source in job_sources()}


@pytest.fixture
def reward_model(annotator):
    return reward_model_save(
        reward_model=RewardModel(name="helpfulness"),
        queues=[preference_queue(members=[annotator])], user=None,
    )  # fmt: skip


def version(reward_model, number, status, **fields):
    return RewardVersion.objects.create(reward_model=reward_model, number=number,
                                        speed=Speed.FULL, trigger=Trigger.SCHEDULE,
                                        status=status, **fields)  # fmt: skip


def tree(researcher, question, status, **fields):
    config = ModelConfigFactory()
    return Tree.objects.create(question=question, decompose_config=config, answer_config=config,
                               compose_config=config, status=status, created_by=researcher,
                               **fields)  # fmt: skip


def test_the_operations_page_lists_and_retries_them(
    reward_model, researcher, admin_user, django_capture_on_commit_callbacks
):
    now = timezone.now()
    failed_run = version(reward_model, 1, Status.FAILED, finished_at=now,
                         reason="The worker stopped answering <b>now</b>.")  # fmt: skip
    version(reward_model, 2, Status.REJECTED, finished_at=now)
    version(reward_model, 3, Status.FAILED, finished_at=now - timedelta(days=30), reason="old")
    failed_tree = tree(researcher, "Why is the sky blue?", TreeStatus.FAILED, heartbeat_at=now,
                       error="expansion stopped: TimeoutError")  # fmt: skip
    tree(researcher, "Why do cats purr?", TreeStatus.RUNNING, heartbeat_at=now)
    tree(researcher, "Done long ago?", TreeStatus.DONE, heartbeat_at=now)

    client = signed_in(admin_user)
    page = client.get(reverse("operations_home")).content.decode()
    assert "helpfulness v1 (full training)" in page
    assert "The worker stopped answering &lt;b&gt;now&lt;/b&gt;." in page  # escaped
    assert "helpfulness v2" not in page and "helpfulness v3" not in page
    assert f"Tree {failed_tree.pk}: Why is the sky blue?" in page
    assert "expansion stopped: TimeoutError" in page
    assert "Why do cats purr?" in page and "Done long ago?" not in page
    assert page.count('name="source" value="trees"') == 1  # the running tree: no retry
    assert page.count('name="source" value="reward-training"') == 1

    retry = reverse("operations_job_retry")
    with (
        mock.patch("rewards.tasks.reward_training_task.delay") as training_enqueued,
        mock.patch("amplification.tasks.tree_expand_task.delay") as tree_enqueued,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert (
            client.post(retry, {"source": "reward-training", "pk": failed_run.pk}).status_code
            == 302
        )
        assert client.post(retry, {"source": "trees", "pk": failed_tree.pk}).status_code == 302
    new_run = reward_model.versions.get(number=4)
    assert (new_run.status, new_run.trigger, new_run.attempt) == (Status.QUEUED, Trigger.RETRY, 2)
    training_enqueued.assert_called_once_with(new_run.pk)
    failed_tree.refresh_from_db()
    assert (failed_tree.status, failed_tree.error) == (TreeStatus.QUEUED, "")
    tree_enqueued.assert_called_once_with(failed_tree.pk)

    # Again: a run is queued now, and the tree is no longer failed; both say so.
    response = client.post(retry, {"source": "reward-training", "pk": failed_run.pk}, follow=True)
    assert "already queued or running" in response.content.decode()
    response = client.post(retry, {"source": "trees", "pk": failed_tree.pk}, follow=True)
    assert "Only a failed tree can be retried." in response.content.decode()
    assert reward_model.versions.count() == 4


def test_a_failed_best_of_n_experiment_is_listed_and_retried(db, annotator, tmp_path):
    from core.jobs import job_retry, jobs_open
    from rewards.models import BestOfNExperiment, ExperimentStatus

    queue = preference_queue(members=[annotator])
    gold = RewardVersion.objects.create(
        reward_model=reward_model_save(reward_model=RewardModel(name="g"), queues=[queue],
                                       user=None),
        number=1, speed=Speed.FAST, trigger=Trigger.MANUAL, status=Status.ACTIVE,
    )  # fmt: skip
    experiment = BestOfNExperiment.objects.create(
        name="lost", policy=ModelConfigFactory(), prompts=["Why?"], prompt_source="test",
        samples_per_prompt=4, temperature=1.0, max_new_tokens=4, gold=gold,
        status=ExperimentStatus.FAILED, error="boom", finished_at=timezone.now(),
    )  # fmt: skip
    (job,) = [j for j in jobs_open() if j.source == "best-of-n"]
    assert job.pk == experiment.pk and job.retryable and job.error == "boom"
    with mock.patch("rewards.best_of_n._enqueue"):
        job_retry(source="best-of-n", pk=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.QUEUED and experiment.error == ""
