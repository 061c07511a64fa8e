from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import QuerySet

from core.roles import Role, user_has_role
from llm.models import ModelConfig, ModelTrial


def model_configs() -> QuerySet[ModelConfig]:
    return ModelConfig.objects.all()


def trial_for_user(user: AbstractBaseUser | AnonymousUser, trial_id: int) -> ModelTrial | None:
    """A researcher's own trial (admins see all); None for anyone else."""
    if not isinstance(user, User) or not user_has_role(user, Role.RESEARCHER):
        return None
    trials = ModelTrial.objects.select_related("config")
    if not user_has_role(user, Role.ADMIN):
        trials = trials.filter(user=user)
    return trials.filter(pk=trial_id).first()
