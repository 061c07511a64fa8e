"""feedback's part of a queue's quality dashboard (annotations.dashboard): agreement of each
model annotator's newest finished run with people, and a row per model annotator in the
annotator statistics, marked as a model."""

from __future__ import annotations

from typing import Any

from annotations.dashboard import DashboardSection, dashboard_section_register
from annotations.models import Queue
from annotations.quality import AnnotatorStats
from feedback.agreement import gold_values, run_agreement, run_answers
from feedback.models import ModelAnnotator
from feedback.routing import shortcut_report
from feedback.selectors import newest_runs


def _context(queue: Queue) -> dict[str, Any]:
    runs = newest_runs([queue.pk])
    return {
        "queue": queue,
        "has_annotators": ModelAnnotator.objects.filter(queue=queue).exists(),
        "agreements": [run_agreement(run) for run in runs],
        "shortcuts": [report for run in runs if (report := shortcut_report(run))],
    }


def _annotators(queue: Queue) -> list[AnnotatorStats]:
    gold = gold_values(queue)
    rows = []
    for run in newest_runs([queue.pk]):
        overall = run_answers(run).get(None, {})
        named = {item: a.scalar for item, a in overall.items() if a.scalar is not None}
        on_gold = [item for item in named if item in gold]
        rows.append(
            AnnotatorStats(
                user_id=None,
                username=f"{run.annotator.name} (run {run.pk})",
                labels=len(named),
                gold_labels=len(on_gold),
                gold_correct=sum(1 for item in on_gold if named[item] == gold[item]),
                labels_per_hour=None,
                median_time_s=None,
                is_model=True,
            )
        )
    return rows


def register() -> None:
    dashboard_section_register(
        DashboardSection(
            name="feedback",
            template="feedback/_dashboard.html",
            context=_context,
            annotators=_annotators,
        )
    )
