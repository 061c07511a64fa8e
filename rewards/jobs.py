"""Reward-model training runs on the operations page's job list (core/jobs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.core.exceptions import ValidationError
from django.urls import reverse

from core.jobs import Job, JobSource, job_rows_open, job_source_register
from rewards.models import RUNNING, RewardVersion, Status, Trigger
from rewards.services import reward_training_start

JOB_STATUS: dict[str, str] = {Status.QUEUED: "queued", Status.FAILED: "failed"}


def _open_runs(since: datetime) -> Iterator[Job]:
    versions = RewardVersion.objects.select_related("reward_model", "created_by")
    for version in job_rows_open(versions.defer("label_ids"), since, open_statuses=RUNNING):
        yield Job(
            source="reward-training",
            pk=version.pk,
            title=f"{version.reward_model.name} v{version.number} ({version.speed} training)",
            status=JOB_STATUS.get(version.status, "running"),  # training, evaluating: running
            created_at=version.created_at,
            error=version.reason if version.status == Status.FAILED else "",
            url=reverse("rewards:detail", kwargs={"pk": version.reward_model_id}),
            owner=version.created_by.username if version.created_by else "",
            # Running runs are the lease reaper's (reward_versions_reap).
            retryable=version.status == Status.FAILED,
        )  # fmt: skip


def _retry(pk: int) -> None:
    """A failed run starts again as a new version of the same speed."""
    version = RewardVersion.objects.select_related("reward_model").filter(pk=pk).first()
    if version is None or version.status != Status.FAILED:
        raise ValidationError("Only a failed training run can be retried.")
    retry = reward_training_start(
        reward_model=version.reward_model, speed=version.speed, trigger=Trigger.RETRY,
        attempt=version.attempt + 1,
    )  # fmt: skip
    if retry is None:
        raise ValidationError("A training run of this reward model is already queued or running.")


def _open_experiments(since: datetime) -> Iterator[Job]:
    from rewards.best_of_n import experiment_stale
    from rewards.models import BestOfNExperiment

    rows = BestOfNExperiment.objects.select_related("created_by").defer("prompts", "analysis")
    for experiment in job_rows_open(rows, since):
        yield Job(
            source="best-of-n", pk=experiment.pk,
            title=f"best-of-{experiment.samples_per_prompt}: {experiment.name}",
            status=experiment.status, created_at=experiment.created_at, error=experiment.error,
            url=reverse("rewards:experiment", kwargs={"pk": experiment.pk}),
            owner=experiment.created_by.username if experiment.created_by else "",
            retryable=experiment.status == "failed" or experiment_stale(experiment),
        )  # fmt: skip


def _retry_experiment(pk: int) -> None:
    from rewards.best_of_n import ExperimentInvalid, best_of_n_retry

    try:
        best_of_n_retry(experiment_id=pk)
    except ExperimentInvalid as error:
        raise ValidationError(error.message) from None


def register() -> None:
    job_source_register(
        JobSource(
            name="best-of-n",
            title="best-of-n experiments",
            open_jobs=_open_experiments,
            retry=_retry_experiment,
        )
    )
    job_source_register(
        JobSource(
            name="reward-training",
            title="reward-model trainings",
            open_jobs=_open_runs,
            retry=_retry,
        )
    )
