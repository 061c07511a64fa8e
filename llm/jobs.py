""" "Try it" trials on the operations page's job list (core/jobs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.urls import reverse

from core.jobs import Job, JobSource, job_rows_open, job_source_register
from llm.models import ModelTrial, TrialStatus
from llm.services import model_trial_retry


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


def register() -> None:
    job_source_register(
        JobSource(
            name="trials",
            title="“Try it” trials",
            open_jobs=_open_trials,
            retry=lambda pk: model_trial_retry(trial_id=pk),
        )
    )
