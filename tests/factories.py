from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from core.roles import Role

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
