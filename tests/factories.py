from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from core.roles import Role
from llm.backends.bundled import BUNDLED_MODEL_ID
from llm.models import ModelConfig, ModelTrial

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def role(self, create: bool, extracted: Role | None, **kwargs: Any) -> None:
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))  # type: ignore[attr-defined]


class ModelConfigFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelConfig

    name = factory.Sequence(lambda n: f"config {n}")
    model = BUNDLED_MODEL_ID
    # Short, greedy and reproducible: a few dozen tokens at ~14 tokens/s on 2 cores.
    temperature = 0.0
    max_new_tokens = 24
    timeout_s = 120.0


class ModelTrialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelTrial

    config = factory.SubFactory(ModelConfigFactory)
    user = factory.SubFactory(UserFactory)
    prompt = "Name three colours."


class DebateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "debate.Debate"

    question = "What colour is the lighthouse keeper's door?"
    answer_a = "Green"
    answer_b = "Red"
    correct_side = "a"
    passage = (
        "The keeper painted his door green every spring, because the salt wind peeled it "
        "by autumn. The boat shed beside it stayed red."
    )
    debater_a_config = factory.SubFactory(ModelConfigFactory)
    debater_b_config = factory.SelfAttribute("debater_a_config")
    judge = factory.SubFactory(UserFactory, role=Role.ANNOTATOR)
    max_rounds = 2
    speech_char_limit = 300
    quote_char_limit = 120
