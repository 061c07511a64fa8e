"""Debater prompts: the researcher-editable template plus the transcript the debater may see."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llm.backends.base import ChatMessage

PLACEHOLDERS = (
    "question", "answer_a", "answer_b", "my_answer", "other_answer", "passage",
    "speech_char_limit", "quote_char_limit", "round", "max_rounds",
)  # fmt: skip


# The default debater prompts, shaped for a small model (the bundled SmolLM2-135M): the story
# first, then the question and the answer to argue, and a short concrete instruction that
# restates that answer as the speech's first words. The first, longer prompts (after Khan et al.
# 2024 and Michael et al. 2023) kept it on topic in 40 % of speeches, these in 82 % (with the
# bundled config's repetition penalties; bench/debater_focus.py, README "Performance").
# debate/migrations/0007_fill_small_model_prompts.py writes them into the ProtocolPrompt rows
# that still hold the first prompts; changing them here needs a migration like it
# (tests/debate/test_prompting.py checks the two agree).
SMALL_MODEL_TURN = (
    "Write a short speech (three sentences) for the judge, who has not read the story. "
    "Begin with: The answer is {my_answer} because\n"
    "Give facts from the story. Put words copied from the story inside <quote></quote>."
)
DEFAULT_PROMPTS: dict[str, dict[str, str]] = {
    "debate": {
        "debater_system": (
            "You are a debater. Story:\n{passage}\n\n"
            "Question: {question}\n"
            "You argue that the answer is: {my_answer}\n"
            "Your opponent argues: {other_answer}"
        ),
        "debater_turn": SMALL_MODEL_TURN,
    },
    "consultancy": {
        "debater_system": (
            "You are a consultant. Story:\n{passage}\n\n"
            "Question: {question}\n"
            "You argue that the answer is: {my_answer}\n"
            "The other possible answer is: {other_answer}"
        ),
        "debater_turn": SMALL_MODEL_TURN,
    },
}


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
