"""Reads shared by pages, exports and the API."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, Sum

from experiments.models import Experiment


@dataclass(frozen=True)
class ParticipantRow:
    """One line of the participant export (payments and bonuses)."""

    external_id: str
    study_id: str
    session_id: str
    arm: str
    items: int  # items answered (timed-out ones not counted)
    time_s: float  # seconds on answered items, server clocks
    correct: int
    counted: int  # labels that count for accuracy (not late when late ones are left out)
    accuracy: str
    late: int
    timed_out: int
    completed: str


def participant_rows(experiment: Experiment) -> list[ParticipantRow]:
    answered = Q(responses__timed_out=False)
    counted = answered & Q(responses__correct__isnull=False)
    if experiment.late_excluded:
        counted &= Q(responses__late=False)
    rows = (
        experiment.participants.select_related("arm")
        .annotate(
            n_items=Count("responses", filter=answered),
            n_time=Sum("responses__time_ms", filter=answered),
            n_correct=Count("responses", filter=counted & Q(responses__correct=True)),
            n_counted=Count("responses", filter=counted),
            n_late=Count("responses", filter=answered & Q(responses__late=True)),
            n_timed_out=Count("responses", filter=Q(responses__timed_out=True)),
        )
        .order_by("sequence")
    )
    return [
        ParticipantRow(
            external_id=p.external_id,
            study_id=p.study_id,
            session_id=p.session_id,
            arm=p.arm.name,
            items=p.n_items,
            time_s=round((p.n_time or 0) / 1000, 1),
            correct=p.n_correct,
            counted=p.n_counted,
            accuracy=f"{p.n_correct / p.n_counted:.3f}" if p.n_counted else "",
            late=p.n_late,
            timed_out=p.n_timed_out,
            completed=p.completed_at.isoformat() if p.completed_at else "",
        )
        for p in rows
    ]
