"""Distil: fine-tune a new model on a distillation set, the second half of iterated
amplification. The rows are the distillation set's (amplification.selectors.distillation_set,
the same rows the JSONL download gives, with the same filters); training, its job and the new
config's lineage are llm's (llm.services.training_run_start). This module only joins the two."""

from __future__ import annotations

from django.contrib.auth.models import User

from amplification.selectors import DistillMode, distillation_set
from llm.models import ModelConfig, TrainingKind, TrainingRun
from llm.schemas import SFTHyperparameters, TrainingRow
from llm.services import training_run_start


def distil_rows(
    *, tree_ids: list[int] | None, min_rating: float | None,
    mode: str = DistillMode.ALL, rated_only: bool = False,
) -> list[TrainingRow]:  # fmt: skip
    """The distillation set's rows as training rows: each node's prompt exactly as the
    answerer saw it (its tree's context included) and its final answer."""
    rows = distillation_set(
        tree_ids=tree_ids, mode=mode, min_rating=min_rating, rated_only=rated_only
    )
    return [TrainingRow(prompt=row.prompt, completion=row.completion) for row in rows]


def distil_source(
    *, tree_ids: list[int] | None, min_rating: float | None,
    mode: str = DistillMode.ALL, rated_only: bool = False,
) -> str:  # fmt: skip
    trees = "every finished tree" if tree_ids is None else f"trees {', '.join(map(str, tree_ids))}"
    nodes = "" if mode == DistillMode.ALL else f", {DistillMode(mode).label} nodes"
    rating = "" if min_rating is None else f", rated nodes with a mean of at least {min_rating:g}"
    rated = ", rated nodes only" if rated_only and min_rating is None else ""
    return f"amplification distillation set: {trees}{nodes}{rating}{rated}"


def distil_start(
    *,
    base: ModelConfig,
    name: str,
    hyperparameters: SFTHyperparameters,
    user: User | None,
    tree_ids: list[int] | None = None,
    min_rating: float | None = None,
    mode: str = DistillMode.ALL,
    rated_only: bool = False,
) -> TrainingRun:
    """Start "Distil into a new model": build the distillation set with these filters and
    queue an SFT run of `base` on it. ValidationError (nothing started) for the rules of
    llm.services.training_run_start: too few rows, a base that is not local, a taken name."""
    rows = distil_rows(tree_ids=tree_ids, min_rating=min_rating, mode=mode, rated_only=rated_only)
    source = distil_source(
        tree_ids=tree_ids, min_rating=min_rating, mode=mode, rated_only=rated_only
    )
    return training_run_start(
        kind=TrainingKind.SFT_DISTIL, parent=base, name=name, rows=rows,
        hyperparameters=hyperparameters, user=user, source=source,
    )  # fmt: skip
