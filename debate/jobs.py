"""Speeches on the operations page's job list (core/jobs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.urls import reverse

from core.jobs import Job, JobSource, job_rows_open, job_source_register
from debate.generation import speeches_stale
from debate.models import Speech, SpeechStatus
from debate.services import speech_retry


def _open_speeches(since: datetime) -> Iterator[Job]:
    open_statuses = (SpeechStatus.QUEUED, SpeechStatus.STREAMING)
    speeches = list(job_rows_open(Speech.objects.all(), since, open_statuses=open_statuses))
    stale = set(
        speeches_stale().filter(pk__in=[s.pk for s in speeches]).values_list("pk", flat=True)
    )
    for speech in speeches:
        yield Job(
            source="speeches",
            pk=speech.pk,
            title=f"Speech {speech.side.upper()}, round {speech.round}, debate {speech.debate_id}",
            status="running" if speech.status == SpeechStatus.STREAMING else speech.status,
            created_at=speech.created_at,
            error=speech.error,
            url=reverse("debate:detail", kwargs={"pk": speech.debate_id}),
            # A speech a worker still writes is not offered: a retry would generate it twice.
            retryable=speech.status == SpeechStatus.FAILED or speech.pk in stale,
        )


def register() -> None:
    job_source_register(
        JobSource(
            name="speeches",
            title="speeches",
            open_jobs=_open_speeches,
            retry=lambda pk: speech_retry(speech_id=pk),
        )
    )
