"""Reads shared by the research pages and the API."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from debate.models import Debate, DebateBatch, Market, Verdict, VerdictKind


def debates_for_research_export(
    *, source: str = "", protocol: str = "", batch: DebateBatch | int | None = None
) -> QuerySet[Debate]:
    debates = Debate.objects.all()
    if source:
        debates = debates.filter(source=source)
    if protocol:
        debates = debates.filter(protocol=protocol)
    if batch:
        debates = debates.filter(batch=batch)
    return debates


@dataclass(frozen=True)
class BatchDebateRow:
    debate: Debate
    llm: Verdict | None
    speeches_done: int


def batch_debates(batch: DebateBatch) -> list[BatchDebateRow]:
    debates = (
        Debate.objects.filter(batch=batch)
        .annotate(done=Count("speeches", filter=Q(speeches__status="done")))
        .order_by("pk")
    )
    verdicts = {
        v.debate_id: v for v in Verdict.objects.filter(debate__batch=batch, kind=VerdictKind.LLM)
    }
    return [
        BatchDebateRow(debate=d, llm=verdicts.get(d.pk), speeches_done=d.done)  # type: ignore[attr-defined]
        for d in debates
    ]


def batch_markets(batch: DebateBatch) -> list[Market]:
    """A market batch's markets with their steps (researchers only: M's predictions)."""
    return list(
        Market.objects.filter(debate__batch=batch)
        .select_related("predictor_config")
        .prefetch_related("steps")
        .order_by("debate_id")
    )
