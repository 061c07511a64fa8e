"""Labels from outside the annotations app that an export may carry (feedback's model
annotators): annotations imports no app of ours, so such an app registers a `LabelSource`
from its AppConfig.ready(). An export asked to include them (ExportSpec.include_ai_labels)
writes every row with its `source` ("human", or the source's name) and its `provenance`
(null for people; what wrote the label, for the others)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class SourcedLabel:
    queue_id: int
    item_id: int
    external_id: str
    label: Any  # the value's one field, as a plain scalar (None: no option named)
    annotator: str  # e.g. "model:judge-bot"
    labelled_at: datetime
    payload: str  # the item's payload as JSON text
    provenance: dict[str, Any]


@dataclass(frozen=True)
class LabelSource:
    name: str  # the rows' `source`, e.g. "model"
    # The source's labels on these queues (gold items only when include_gold), item order.
    labels: Callable[[Sequence[int], bool], Iterator[SourcedLabel]]


_SOURCES: dict[str, LabelSource] = {}


def label_source_register(source: LabelSource) -> None:
    if source.name in _SOURCES or source.name == "human":
        raise ValueError(f"label source {source.name!r} is already registered")
    _SOURCES[source.name] = source


def label_sources() -> list[LabelSource]:
    return list(_SOURCES.values())
