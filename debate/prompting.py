"""Debater prompts: the researcher-editable template plus the transcript the debater may see."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llm.backends.base import ChatMessage

PLACEHOLDERS = (
    "question", "answer_a", "answer_b", "my_answer", "other_answer", "passage",
    "speech_char_limit", "quote_char_limit", "round", "max_rounds",
)  # fmt: skip


class _KeepUnknown(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def template_fill(template: str, values: Mapping[str, object]) -> str:
    """str.format with unknown placeholders left as written; ValueError on broken braces."""
    return template.format_map(_KeepUnknown(values))


@dataclass(frozen=True)
class TranscriptEntry:
    round: int
    speaker: str  # "Debater A", "Debater B", "Consultant" or "Judge"
    text: str


def debater_messages(
    *, system_template: str, turn_template: str, values: dict[str, object],
    transcript: Iterable[TranscriptEntry],
) -> list[ChatMessage]:  # fmt: skip
    lines = [f"[Round {entry.round}] {entry.speaker}: {entry.text}" for entry in transcript]
    history = "\n\n".join(lines) if lines else "(Nothing has been said yet.)"
    user = f"Transcript so far:\n{history}\n\n{template_fill(turn_template, values)}"
    return [
        ChatMessage(role="system", content=template_fill(system_template, values)),
        ChatMessage(role="user", content=user),
    ]
