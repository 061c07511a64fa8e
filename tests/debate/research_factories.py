"""Factories for the research tables (question banks, batches)."""

from __future__ import annotations

import factory

from debate.models import BankQuestion, QuestionBank

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
