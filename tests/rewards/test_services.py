"""When runs start: "not enough labels" is a state of the reward model (with how many more are
needed), never a version row; a 60-item queue reaches a first active version once its labels
are in; the schedule's first full run waits for enough labels."""

from __future__ import annotations

from unittest import mock

import pytest

from rewards.data import heldout_target
from rewards.models import RewardModel, RewardVersion, SplitGroup, Status, Trigger
from rewards.services import (
    RewardError,
    reward_model_readiness,
    reward_model_save,
    reward_models_check,
    reward_retrain_now,
)
from rewards.training import reward_training_run
from tests.rewards.factories import add_items, label_all, preference_items, preference_queue


def _check() -> list[RewardVersion]:
    """One beat of reward_models_check, the run's task not enqueued (the test runs it)."""
    with mock.patch("rewards.tasks.reward_training_task.delay"):
        return reward_models_check()


def _run(version: RewardVersion) -> RewardVersion:
    reward_training_run(version_id=version.pk)
    version.refresh_from_db()
    return version


def test_a_60_item_queue_reaches_a_first_active_version_once_its_labels_are_in(annotator, settings):
    assert (settings.REWARD_MIN_TRAIN_PAIRS, settings.REWARD_MIN_HELDOUT_PAIRS) == (20, 8)
    queue = preference_queue(members=[annotator])
    answers = add_items(queue, preference_items(60, seed=11))
    # The defaults a new user gets: 20 % held out, fast training every 20 labels.
    reward_model = reward_model_save(
        reward_model=RewardModel(name="helpful", full_every_hours=0), queues=[queue], user=None
    )
    assert (reward_model.heldout_percent, reward_model.fast_every) == (20, 20)

    needed = reward_model_readiness(reward_model=reward_model).labels_needed
    # 36 labels: ceil(20 % of 36) = 8 held out, 28 to train.
    assert needed == 36
    for labelled in range(1, needed + 1):
        assert label_all(queue, annotator, answers, limit=1) == 1
        started = _check()
        readiness = reward_model_readiness(reward_model=reward_model)
        # One a/b label on a new item is one pair: the count goes down by exactly one.
        assert readiness.labels_needed == needed - labelled
        if labelled < needed:
            assert started == [] and not RewardVersion.objects.exists()
    # Ready: the run starts by itself, and there is no rejected row before it.
    [v1] = started
    assert (v1.number, v1.trigger) == (1, Trigger.LABELS)
    v1 = _run(v1)
    assert v1.status == Status.ACTIVE, v1.reason
    assert v1.typed_metrics.heldout_pairs == 8 and v1.typed_metrics.train_pairs == 28
    assert v1.heldout is not None and v1.heldout.beats_chance

    # The rest of the labels: the held-out set grows to its share and keeps v1's pairs.
    held_v1 = set(SplitGroup.objects.filter(heldout=True).values_list("group", flat=True))
    assert label_all(queue, annotator, answers) == 24
    [v2] = _check()
    v2 = _run(v2)
    assert v2.status == Status.ACTIVE, v2.reason
    metrics = v2.typed_metrics
    assert metrics.heldout_pairs == heldout_target(60, 20) == 12
    assert metrics.train_pairs == 48 and metrics.baseline_version == 1
    held_v2 = set(SplitGroup.objects.filter(heldout=True).values_list("group", flat=True))
    assert held_v1 < held_v2 and SplitGroup.objects.count() == 60
    assert not RewardVersion.objects.filter(status=Status.REJECTED).exists()
    reward_model.refresh_from_db()
    assert reward_model.active_version_id == v2.pk


def test_retrain_now_refuses_while_labels_are_too_few_and_makes_no_row(annotator, researcher):
    queue = preference_queue(members=[annotator])
    label_all(queue, annotator, add_items(queue, preference_items(12)))
    reward_model = reward_model_save(
        reward_model=RewardModel(name="rm", fast_every=5), queues=[queue], user=None
    )
    assert _check() == []  # 12 new labels ≥ 5, but not enough to evaluate
    readiness = reward_model_readiness(reward_model=reward_model)
    assert not readiness.ready and readiness.labels_needed == 36 - 12
    with pytest.raises(RewardError, match="Not enough labels yet: 24 more labels needed"):
        reward_retrain_now(reward_model=reward_model, user=researcher, speed="fast")
    assert not RewardVersion.objects.exists()
    reward_model.refresh_from_db()
    assert reward_model.typed_readiness == readiness  # stored by the check


def test_the_schedules_first_full_run_waits_for_enough_labels(annotator):
    queue = preference_queue(members=[annotator])
    answers = add_items(queue, preference_items(40))
    reward_model = reward_model_save(
        reward_model=RewardModel(name="nightly", fast_every=1000, full_every_hours=24),
        queues=[queue], user=None,
    )  # fmt: skip
    label_all(queue, annotator, answers, limit=12)
    assert _check() == []  # due by the clock, 12 labels: waits
    assert reward_model_readiness(reward_model=reward_model).labels_needed == 24
    label_all(queue, annotator, answers)
    [version] = _check()
    assert (version.speed, version.trigger, version.status) == ("full", Trigger.SCHEDULE, "queued")
