"""Callbacks after labels are committed, for apps that build on annotations (rewards).

annotations imports no app of ours, so an app that must react to new labels registers a
callback here from its AppConfig.ready(); `labels_committed_notify` runs them after the
surrounding transaction commits (never for a rolled-back label). Callbacks must be cheap:
they run on the annotator's request — rewards' only counts labels and, when a threshold is
crossed, enqueues a task. A failing callback is logged, never the annotator's problem.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from django.db import transaction

LabelsCallback = Callable[[Sequence[int]], None]  # queue ids
_callbacks: list[LabelsCallback] = []
log = logging.getLogger(__name__)


def labels_committed_register(callback: LabelsCallback) -> None:
    if callback not in _callbacks:
        _callbacks.append(callback)


def labels_committed_notify(*, queue_ids: Sequence[int]) -> None:
    """Call from a label write (inside or outside its transaction)."""
    ids = list(queue_ids)

    def run() -> None:
        for callback in list(_callbacks):
            try:
                callback(ids)
            except Exception:
                log.exception("labels-committed callback %r failed", callback)

    transaction.on_commit(run)
