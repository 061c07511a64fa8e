"""The debate texts the automatic judge scores (rewards/auto_judge.py): which debates are over
and what each side said. Registered with rewards from DebateConfig.ready(), so rewards reads
debates without importing this app."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Exists, OuterRef, QuerySet

from debate.models import Debate, DebateStatus, Side, Speech, SpeechStatus
from rewards.auto_judge import DebateTexts, DebateTextsProvider, debate_texts_register


def debates_over() -> QuerySet[Debate]:
    """Judged or finished debates with at least one speech (not metadata-only rooms)."""
    spoken = Speech.objects.filter(debate=OuterRef("pk"), status=SpeechStatus.DONE)
    return Debate.objects.filter(
        Exists(spoken), status__in=(DebateStatus.JUDGED, DebateStatus.FINISHED)
    )


def debate_texts(ids: Sequence[int]) -> list[DebateTexts]:
    """Each side's answer and finished speeches, in the order they were given."""
    speeches: dict[tuple[int, str], list[str]] = {}
    done = Speech.objects.filter(debate_id__in=ids, status=SpeechStatus.DONE)
    for debate_id, side, text in done.order_by("round", "pk").values_list(
        "debate_id", "side", "text"
    ):
        speeches.setdefault((debate_id, side), []).append(text)
    return [
        DebateTexts(
            debate_id=debate.pk,
            question=debate.question,
            answer_a=debate.answer_a,
            answer_b=debate.answer_b,
            speeches_a=tuple(speeches.get((debate.pk, Side.A), ())),
            speeches_b=tuple(speeches.get((debate.pk, Side.B), ())),
            correct_side=debate.correct_side,
        )  # fmt: skip
        for debate in Debate.objects.filter(pk__in=ids).only(
            "question", "answer_a", "answer_b", "correct_side"
        )
    ]


def register() -> None:
    debate_texts_register(DebateTextsProvider(over=debates_over, texts=debate_texts))
