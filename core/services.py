"""Writes that belong to no single feature app: demo users."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from core.roles import Role

DEMO_USERS: tuple[tuple[str, Role], ...] = (
    ("annotator1", Role.ANNOTATOR),
    ("annotator2", Role.ANNOTATOR),
    ("researcher", Role.RESEARCHER),
    ("admin", Role.ADMIN),
)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: Role
    password: str


def demo_users_seed(*, password: str | None = None) -> list[DemoLogin]:
    """Create the demo users that are missing; return the ones created, with passwords.

    Idempotent: existing users keep their password. Runs in one transaction.
    """
    user_model = get_user_model()
    created: list[DemoLogin] = []
    with transaction.atomic():
        for username, role in DEMO_USERS:
            if user_model.objects.filter(username=username).exists():
                continue
            user_password = password or secrets.token_urlsafe(9)
            user = user_model.objects.create_user(username=username, password=user_password)
            user.groups.add(Group.objects.get(name=role))
            if role is Role.ADMIN:
                user.is_staff = True
                user.is_superuser = True
                user.save(update_fields=["is_staff", "is_superuser"])
            created.append(DemoLogin(username=username, role=role, password=user_password))
    return created
