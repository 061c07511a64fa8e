"""Telling a debate's browsers that it changed: one group per debate, sent after commit."""

from __future__ import annotations

from django.db import transaction

from core.streams import stream_send


def debate_group_name(debate_id: int) -> str:
    return f"debate-{debate_id}"


def debate_changed(debate_id: int) -> None:
    """Every browser watching the debate re-renders it, once the transaction commits (at once
    outside one)."""
    transaction.on_commit(
        lambda: stream_send(debate_group_name(debate_id), {"type": "debate.changed"})
    )
