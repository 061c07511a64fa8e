"""A worker killed mid-training, a corrupt checkpoint, too few labels."""

from __future__ import annotations

import shutil
import signal
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.utils import timezone

from rewards.ml import ArtifactError
from rewards.models import RewardVersion, Speed, Status, Trigger
from rewards.scoring import reward_model_score
from rewards.services import (
    RewardError,
    reward_training_start,
    reward_version_rollback,
    reward_versions_reap,
)
from rewards.tasks import reward_training_task
from tests.helpers import wait_for, worker_log
from tests.rewards.factories import (
    add_items,
    preference_items,
    run_now,
    trained_model,
)

PAIR = [("Explain the tides.", "Happy to help! Here is a clear explanation of the tides.")]


@pytest.mark.worker
def test_a_worker_killed_mid_training_leaves_the_active_version_and_a_retry_succeeds(
    transactional_db, django_db_serialized_rollback, annotator, start_worker
):
    reward_model = trained_model(annotator)
    v1 = run_now(reward_model)
    assert v1.status == Status.ACTIVE
    before = reward_model_score(reward_model_id=reward_model.pk, pairs=PAIR).rewards

    # A full run, delivered to a worker of its own (a private queue), killed mid-training.
    with mock.patch("rewards.tasks.reward_training_task.delay"):
        v2 = reward_training_start(reward_model=reward_model, speed=Speed.FULL,
                                   trigger=Trigger.MANUAL)  # fmt: skip
    assert v2 is not None
    private = f"kill-{v2.pk}"
    doomed = start_worker(queues=private, REWARD_FULL_EPOCHS="1")
    reward_training_task.apply_async((v2.pk,), queue=private)
    wait_for(
        lambda: RewardVersion.objects.filter(pk=v2.pk, status=Status.TRAINING,
                                             progress_step__gte=1).exists(),
        # A worker's start, the model's load and a step: 240 s was not enough on a 2-core
        # machine also running another test suite.
        timeout=400, what="the full run to take a step", log=worker_log(doomed.log_name),
    )  # fmt: skip
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)

    v2.refresh_from_db()
    assert v2.status == Status.TRAINING  # nobody knows yet
    reward_model.refresh_from_db()
    assert reward_model.active_version_id == v1.pk
    # Still serving, the same scores.
    assert reward_model_score(reward_model_id=reward_model.pk, pairs=PAIR).rewards == before

    # Before the lease runs out nothing is reaped; after, the run fails and a retry is queued.
    assert reward_versions_reap() == []
    later = v2.lease_expires_at + timedelta(seconds=1)
    with mock.patch("rewards.tasks.reward_training_task.delay") as enqueue:
        [retry] = reward_versions_reap(now=later)
    v2.refresh_from_db()
    assert v2.status == Status.FAILED and "lease expired" in v2.reason
    assert retry.trigger == Trigger.RETRY and retry.attempt == 2 and retry.speed == Speed.FULL
    enqueue.assert_called_once_with(retry.pk)

    start_worker(queues="training,default", REWARD_FULL_EPOCHS="1")
    reward_training_task.delay(retry.pk)
    # A second delivery of the dead run's task finds nothing to claim.
    reward_training_task.delay(v2.pk)
    retry = wait_for(
        lambda: RewardVersion.objects.filter(pk=retry.pk, status__in=[Status.ACTIVE,
                                             Status.REJECTED]).first(),
        timeout=400, what="the retry to finish",
    )  # fmt: skip
    assert retry.typed_metrics.heldout_accuracy is not None
    assert retry.label_count == 60
    v2.refresh_from_db()
    assert v2.status == Status.FAILED


def test_a_run_that_finds_too_few_labels_rejects_and_counts_again(db, annotator):
    # Runs start only when the labels are enough (tests/rewards/test_services.py); one
    # started anyway (labels removed meanwhile) says why and forgets the stored readiness.
    reward_model = trained_model(annotator, n=12)
    reward_model.readiness = {"stale": True}
    reward_model.save(update_fields=["readiness"])
    version = run_now(reward_model)
    assert version.status == Status.REJECTED
    assert version.reason.startswith("Not enough labels to train")
    reward_model.refresh_from_db()
    assert reward_model.active_version is None and reward_model.readiness == {}
    assert not reward_model.split_groups.exists()  # nothing trained: no side fixed


def test_too_few_heldout_pairs_reject(db, annotator, settings):
    settings.REWARD_MIN_HELDOUT_PAIRS = 1000
    reward_model = trained_model(annotator, n=40)
    version = run_now(reward_model)
    assert version.status == Status.REJECTED
    assert version.reason.startswith("Not enough labels to evaluate")
    assert reward_model.versions.get().artifact_path == ""


def test_a_corrupt_checkpoint_never_becomes_active(db, annotator):
    reward_model = trained_model(annotator)
    v1 = run_now(reward_model)
    v2 = run_now(reward_model)
    assert v2.status == Status.ACTIVE  # the same labels: as accurate, so it goes live
    v1.refresh_from_db()
    assert v1.status == Status.RETIRED
    weights = Path(v1.artifact_path) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(RewardError, match="missing or damaged"):
        reward_version_rollback(version=v1, user=annotator)
    shutil.rmtree(v1.artifact_path)
    with pytest.raises(RewardError, match="missing or damaged"):
        reward_version_rollback(version=v1, user=annotator)
    reward_model.refresh_from_db()
    assert reward_model.active_version_id == v2.pk


def test_a_checkpoint_that_does_not_load_fails_the_run(db, annotator):
    reward_model = trained_model(annotator)

    def broken_save(loaded, final, info):
        final.mkdir(parents=True)
        (final / "config.json").write_text("{")
        (final / "arbiter.json").write_text("{}")
        (final / "model.safetensors").write_bytes(b"garbage")

    with mock.patch("rewards.ml.save", broken_save), pytest.raises(ArtifactError):
        run_now(reward_model)
    version = reward_model.versions.get()
    assert version.status == Status.FAILED
    assert "does not load" in version.reason
    reward_model.refresh_from_db()
    assert reward_model.active_version is None
    assert not Path(version.artifact_path).exists()
    assert timezone.now() >= version.finished_at


def test_items_added_after_a_version_went_live_get_scored(db, annotator):
    from annotations.models import Priority
    from rewards.services import reward_scores_due
    from rewards.tasks import reward_models_check_task
    from rewards.training import reward_scores_refresh

    reward_model = trained_model(annotator)
    queue = reward_model.queues.get()
    queue.priority = Priority.UNCERTAINTY
    queue.save()
    assert reward_scores_due() == []  # nothing live yet
    run_now(reward_model)
    reward_scores_refresh(reward_model_id=reward_model.pk)
    assert reward_scores_due() == []  # every open item scored (none are open)
    add_items(queue, preference_items(3, seed=9, start=500))
    assert reward_scores_due() == [reward_model.pk]
    with mock.patch("rewards.tasks.reward_scores_refresh_task.delay") as enqueue:
        reward_models_check_task()
    enqueue.assert_called_once_with(reward_model.pk, only_missing=True)
    assert reward_scores_refresh(reward_model_id=reward_model.pk, only_missing=True) == 3
    assert reward_scores_due() == []
    scores = list(queue.items.filter(complete=False).values_list("uncertainty", flat=True))
    assert len(scores) == 3 and all(0 <= s <= 1 for s in scores)


def test_long_passes_renew_the_lease_and_stop_once_reaped(db, settings):
    from rewards.models import RewardModel
    from rewards.training import RunLost, _Progress

    reward_model = RewardModel.objects.create(name="rm")
    version = RewardVersion.objects.create(
        reward_model=reward_model, number=1, speed="fast", trigger="manual",
        status=Status.TRAINING, lease_expires_at=timezone.now(),
    )  # fmt: skip
    progress = _Progress(version)
    progress.last_beat = 0.0
    progress.beat()
    version.refresh_from_db()
    assert version.lease_expires_at > timezone.now() + timedelta(seconds=60)
    RewardVersion.objects.filter(pk=version.pk).update(status=Status.FAILED)
    progress.last_beat = 0.0
    with pytest.raises(RunLost):
        progress.beat()
