"""Sections other apps add to a queue's quality dashboard, and the annotators they label as.

annotations imports no app of ours, so an app that labels queue items its own way (feedback's
model annotators) registers a `DashboardSection` from its AppConfig.ready(): a template and
the context it renders for one queue, and the rows it adds to the annotator statistics (each
marked `is_model` when a model wrote the labels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from annotations.models import Queue
from annotations.quality import AnnotatorStats


@dataclass(frozen=True)
class DashboardSection:
    name: str
    template: str
    context: Callable[[Queue], dict[str, Any]]
    annotators: Callable[[Queue], list[AnnotatorStats]] = lambda queue: []


@dataclass(frozen=True)
class RenderedSection:
    template: str
    context: dict[str, Any]


_SECTIONS: dict[str, DashboardSection] = {}


def dashboard_section_register(section: DashboardSection) -> None:
    if section.name in _SECTIONS:
        raise ValueError(f"dashboard section {section.name!r} is already registered")
    _SECTIONS[section.name] = section


def dashboard_sections(queue: Queue) -> list[RenderedSection]:
    return [RenderedSection(s.template, s.context(queue)) for s in _SECTIONS.values()]


def dashboard_annotators(queue: Queue) -> list[AnnotatorStats]:
    return [row for s in _SECTIONS.values() for row in s.annotators(queue)]
