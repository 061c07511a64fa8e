"""The debate-judgment item kind (a finished debate: \"which debater argued better?\") and the
question-judgment kind (a question, two answers and the transcript of a consultancy or debate
about it, or none for a direct answer: \"how likely is answer A to be correct?\", as a debate
judge answers)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictInt

from annotations.kinds import (
    MAX_TEXT_CHARS,
    PAIRWISE_KEYS,
    ChoiceValue,
    ItemKind,
    LabelValue,
    Payload,
    QueueKind,
    item_kind_register,
)


class DebateTurn(Payload):
    speaker: str = Field(min_length=1, max_length=100)
    text: str = Field(max_length=MAX_TEXT_CHARS)


class DebatePayload(Payload):
    """A finished debate transcript: which debater argued better?"""

    question: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    answer_a: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    answer_b: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    turns: list[DebateTurn] = Field(min_length=1, max_length=200)
    source_id: str = Field(default="", max_length=200)


class QuestionPayload(Payload):
    """A question for a judge who never sees the passage: the two answers and what was said
    about them (a consultant's or two debaters' speeches; none for a direct answer)."""

    question: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    answer_a: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    answer_b: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    turns: list[DebateTurn] = Field(default_factory=list, max_length=200)


class ProbabilityValue(LabelValue):
    """The judge's probability (whole percent, 1–99, as a debate judge gives it) that answer A
    is correct; B's is the rest."""

    probability_a: StrictInt = Field(ge=1, le=99)


# The swapped order shows answer B as A: its debater is renamed with it.
_SWAPPED_SPEAKERS = {"Debater A": "Debater B", "Debater B": "Debater A"}


def transcript_text(payload: dict[str, Any], swapped: bool) -> str:
    """The debate's speeches as a judge reads them, one per paragraph ("Speaker: text"),
    with Debater A and B renamed when the answers are shown swapped. Speeches that name a
    debater in their own words keep the name they wrote."""
    lines = []
    for turn in payload.get("turns", []):
        speaker = str(turn["speaker"])
        if swapped:
            speaker = _SWAPPED_SPEAKERS.get(speaker, speaker)
        lines.append(f"{speaker}: {turn['text']}")
    return "Debate transcript:\n\n" + "\n\n".join(lines) if lines else ""


def register() -> None:
    item_kind_register(
        ItemKind(
            name=QueueKind.DEBATE_JUDGMENT,
            title="Debate judgment",
            payload_model=DebatePayload,
            value_model=ChoiceValue,
            value_field="choice",
            template="debate/kinds/debate.html",
            keys=PAIRWISE_KEYS,
            pair_fields=("", "question", "answer_a", "answer_b"),
            pair_context=transcript_text,
        )
    )
    item_kind_register(
        ItemKind(
            name=QueueKind.QUESTION_JUDGMENT,
            title="Question judgment (probability)",
            payload_model=QuestionPayload,
            value_model=ProbabilityValue,
            value_field="probability_a",
            template="debate/kinds/question.html",
            # Its items are a bank's questions with transcripts, answered with a typed
            # probability: an experiment's protocol arm makes the queue and its items.
            made_by="a question-bank experiment (Experiments: an experiment whose questions "
            "are a question bank makes one such queue per arm, with its items)",
        )
    )
