"""Factories for the research tables (question banks, batches)."""

from __future__ import annotations

import factory

from debate.models import (
    BankQuestion,
    Debate,
    DebateStatus,
    QuestionBank,
    Source,
    Verdict,
    VerdictKind,
)

PASSAGE = (
    "Mira kept the ferry log in green ink, because the harbour master could not read pencil "
    "in the rain. The secret word of the crossing was {secret}."
)


class QuestionBankFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QuestionBank

    name = factory.Sequence(lambda n: f"bank {n}")


class BankQuestionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BankQuestion

    bank = factory.SubFactory(QuestionBankFactory)
    line = factory.Sequence(lambda n: n + 1)
    passage = factory.Sequence(lambda n: PASSAGE.format(secret=f"passage-secret-{n}"))
    question = factory.Sequence(lambda n: f"Why green ink, crossing {n}?")
    options = ["So the log could be read in the rain", "Green ink was cheaper", "No reason"]
    gold_index = 0


def imported_rooms(count: int, *, prefix: str = "room") -> list[Debate]:
    """`count` finished NYU rooms, as an import leaves them, each with its live judge's
    verdict: made in two bulk inserts (the list pages need hundreds, not a real import). Room
    i's judge put (10 + i % 80) % on A, A being correct for even i: right and wrong judges."""
    debates = Debate.objects.bulk_create(
        Debate(
            question=f"{prefix} {n}: why was the lighthouse door green?", answer_a="Fog",
            answer_b="Salt", correct_side="a" if n % 2 == 0 else "b", passage="The story.",
            status=DebateStatus.FINISHED, source=Source.NYU, room_name=f"{prefix}-{n}",
            judge_name=f"judge {n % 7}", current_round=1,
        )
        for n in range(count)
    )  # fmt: skip
    Verdict.objects.bulk_create(
        Verdict(
            debate=debate,
            kind=VerdictKind.HUMAN,
            judge_name=debate.judge_name,
            probability_a=10 + n % 80,
            judge_turns=n % 3,
        )  # fmt: skip
        for n, debate in enumerate(debates)
    )
    return debates
