"""Every background job an admin should see: a small registry that apps fill in.

A job is a row (`QUEUED → RUNNING → DONE/FAILED`, see CONVENTIONS). Each app that runs jobs
registers a `JobSource` from its AppConfig.ready(): how to list its queued, running and
recently failed jobs, and how to retry one. The operations page lists them all (newest first)
with their age and error, and a retry button; core imports no app to do it.

    job_source_register(JobSource(name="exports", title="exports", open_jobs=…, retry=…))

`open_jobs(since)` returns the source's queued and running jobs, and its failed ones that
finished after `since`; `retry(pk)` starts a failed (or stuck) job again and raises Django's
ValidationError when that job cannot be retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

# Failed jobs stay on the list this long (queued and running ones stay until they finish).
FAILED_SHOWN_FOR = timedelta(days=7)
M = TypeVar("M", bound=Model)
# What the page shows at most; the list is sorted newest first.
JOBS_SHOWN = 100


@dataclass(frozen=True)
class Job:
    source: str  # the JobSource's name
    pk: int
    title: str  # e.g. "export 12 (csv)"
    status: str  # queued, running or failed
    created_at: datetime
    error: str = ""
    url: str = ""  # where to look at it, if anywhere
    owner: str = ""
    retryable: bool = True

    @property
    def age(self) -> timedelta:
        return timezone.now() - self.created_at


@dataclass(frozen=True)
class JobSource:
    name: str
    title: str  # what the page calls this source's jobs, plural: "exports"
    open_jobs: Callable[[datetime], Iterable[Job]]
    retry: Callable[[int], object]


_SOURCES: dict[str, JobSource] = {}


def job_source_register(source: JobSource) -> None:
    """Call from an AppConfig.ready(); a name can be registered once."""
    if source.name in _SOURCES:
        raise ValueError(f"job source {source.name!r} is already registered")
    _SOURCES[source.name] = source


def job_rows_open(
    rows: QuerySet[M], since: datetime, *, open_statuses: Iterable[str] = ("queued", "running")
) -> QuerySet[M]:
    """A job table's rows to list: open ones, and failed ones finished after `since`; newest
    first, at most JOBS_SHOWN (each table has `status`, `created_at` and `finished_at`)."""
    shown = Q(status__in=tuple(open_statuses)) | Q(status="failed", finished_at__gte=since)
    return rows.filter(shown).order_by("-created_at")[:JOBS_SHOWN]


def job_sources() -> list[JobSource]:
    return list(_SOURCES.values())


def jobs_open(*, now: datetime | None = None, limit: int = JOBS_SHOWN) -> list[Job]:
    """Queued, running and recently failed jobs of every source, newest first."""
    since = (now or timezone.now()) - FAILED_SHOWN_FOR
    jobs = [job for source in _SOURCES.values() for job in source.open_jobs(since)]
    jobs.sort(key=lambda job: job.created_at, reverse=True)
    return jobs[:limit]


def job_retry(*, source: str, pk: int) -> None:
    """Retry one job; ValidationError for an unknown source or a job that cannot be retried."""
    found = _SOURCES.get(source)
    if found is None:
        raise ValidationError(f"No job source named {source!r}.")
    found.retry(pk)
