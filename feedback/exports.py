"""Model annotators' labels in label exports (annotations/exports/sources.py): each model
annotator's newest finished run, one row per item and principle, with its provenance."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from django.db.models import TextField
from django.db.models.functions import Cast

from annotations.exports.sources import LabelSource, SourcedLabel, label_source_register
from feedback.models import AILabel
from feedback.selectors import newest_runs


def ai_labels_exported(queue_ids: Sequence[int], include_gold: bool) -> Iterator[SourcedLabel]:
    for run in newest_runs(queue_ids):
        kind = run.annotator.queue.item_kind
        labels = AILabel.objects.filter(run=run).select_related("principle", "item")
        if not include_gold:
            labels = labels.filter(item__is_gold=False)
        rows = labels.order_by("item_id", "principle__position").annotate(
            payload_text=Cast("item__payload", TextField())
        )
        for label in rows.iterator(chunk_size=2000):
            yield SourcedLabel(
                queue_id=run.annotator.queue_id,
                item_id=label.item_id,
                external_id=label.item.external_id,
                label=label.scalar(kind.value_field),
                annotator=f"model:{run.annotator.name}",
                labelled_at=label.created_at,
                payload=label.payload_text,  # type: ignore[attr-defined]
                provenance={
                    "run": run.pk,
                    "model_config": run.model_snapshot,
                    "constitution": run.version.constitution.name,
                    "constitution_version": run.version.number,
                    "principle": label.principle.text,
                    "probability": label.probability,
                    "method": run.method,
                    "orders_disagree": label.orders_disagree,
                },
            )


def register() -> None:
    label_source_register(LabelSource(name="model", labels=ai_labels_exported))
