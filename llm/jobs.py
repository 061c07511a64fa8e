""" "Try it" trials on the operations page's job list (core/jobs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.urls import reverse

from core.jobs import Job, JobSource, job_rows_open, job_source_register
from llm.models import ModelTrial, TrainingRun, TrainingStatus, TrialStatus
from llm.services import model_trial_retry, training_run_retry


def _open_trials(since: datetime) -> Iterator[Job]:
    for trial in job_rows_open(ModelTrial.objects.select_related("config", "user"), since):
        yield Job(
            source="trials",
            pk=trial.pk,
            title=f"Try {trial.config.name}",
            status=trial.status,
            created_at=trial.created_at,
            error=trial.error,
            url=reverse("llm:config_detail", kwargs={"pk": trial.config_id}),
            owner=trial.user.username,
            retryable=trial.status in (TrialStatus.FAILED, TrialStatus.QUEUED),
        )


def _open_training_runs(since: datetime) -> Iterator[Job]:
    runs = TrainingRun.objects.select_related("parent", "created_by").defer("rows")
    for run in job_rows_open(runs, since):
        yield Job(
            source="training-runs",
            pk=run.pk,
            title=f"{run.get_kind_display()}: {run.name} from {run.parent.name}",
            status=run.status,
            created_at=run.created_at,
            error=run.reason,
            url=reverse("llm:training_run_detail", kwargs={"pk": run.pk}),
            owner=run.created_by.username if run.created_by else "",
            # A running run is the stale sweep's (training_runs_fail_stale).
            retryable=run.status in (TrainingStatus.FAILED, TrainingStatus.QUEUED),
        )


def register() -> None:
    job_source_register(
        JobSource(
            name="training-runs",
            title="model training runs",
            open_jobs=_open_training_runs,
            retry=lambda pk: training_run_retry(run_id=pk),
        )
    )
    job_source_register(
        JobSource(
            name="trials",
            title="“Try it” trials",
            open_jobs=_open_trials,
            retry=lambda pk: model_trial_retry(trial_id=pk),
        )
    )
