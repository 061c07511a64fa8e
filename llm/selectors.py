from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import QuerySet

from core.roles import Role, user_has_role
from llm.models import ModelConfig, ModelTrial, TrainingRun


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


def training_runs() -> QuerySet[TrainingRun]:
    """Runs newest first, without their rows (which can be large)."""
    return TrainingRun.objects.select_related("parent", "result").defer("rows")


def lineage(config: ModelConfig) -> list[TrainingRun]:
    """The runs that made `config`, newest first: its own run, its parent's, and so on back
    to a config nobody trained (bounded, in case of a cycle made by hand)."""
    chain: list[TrainingRun] = []
    seen: set[int] = set()
    current: ModelConfig | None = config
    while current is not None and current.pk not in seen and len(chain) < 50:
        seen.add(current.pk)
        run = training_runs().filter(result=current).first()
        if run is None:
            break
        chain.append(run)
        current = run.parent
    return chain
