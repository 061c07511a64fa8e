"""The training-run API (mounted by config/api.py at /api/training-runs/): list, read, start.

Researchers and admins only, like the pages; the same selectors and services run behind both.
A run's result is a model config with lineage: its parent, the data's hash and row count,
the hyperparameters and the losses.
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.errors import HttpError
from pydantic import Field

from config.api_contract import Body, Id, api_user, errors, researchers
from core.text import StoredText
from llm.models import TrainingKind, TrainingRun
from llm.schemas import (
    CurvePoint,
    DPOHyperparameters,
    MachineSettings,
    PolicyReport,
    RejectionSamplingHyperparameters,
    SFTHyperparameters,
    TrainingRow,
)
from llm.selectors import model_configs, training_runs
from llm.services import training_run_start

MAX_ROWS = 20_000
MAX_ROW_CHARS = 20_000

training_runs_router = Router(tags=["training runs"], auth=researchers)


class TrainingRunOut(Schema):
    id: int
    kind: str
    name: str
    status: str
    reason: str
    parent_config: int
    source: str
    dataset_hash: str
    row_count: int
    train_rows: int
    eval_rows: int
    hyperparameters: SFTHyperparameters | DPOHyperparameters | RejectionSamplingHyperparameters
    machine: MachineSettings | None
    progress_step: int
    progress_total: int
    train_loss: list[CurvePoint]
    eval_loss: list[CurvePoint]
    eval_loss_before: float | None
    eval_loss_after: float | None
    report: PolicyReport | None = Field(
        description="policy runs (DPO, rejection sampling), once trained: KL from the parent "
        "and proxy reward on held-out prompts"
    )
    result_config: int | None
    attempt: int
    wall_time_s: float | None
    created_at: datetime
    finished_at: datetime | None

    @staticmethod
    def of(run: TrainingRun) -> TrainingRunOut:
        curves = run.typed_curves
        return TrainingRunOut(
            id=run.pk, kind=run.kind, name=run.name, status=run.status, reason=run.reason,
            parent_config=run.parent_id, source=run.source, dataset_hash=run.dataset_hash,
            row_count=run.row_count, train_rows=run.train_rows, eval_rows=run.eval_rows,
            hyperparameters=run.typed_hyperparameters, machine=run.typed_machine,
            progress_step=run.progress_step, progress_total=run.progress_total,
            train_loss=curves.train, eval_loss=curves.eval,
            eval_loss_before=run.eval_loss_before, eval_loss_after=run.eval_loss_after,
            report=run.typed_report, result_config=run.result_id, attempt=run.attempt,
            wall_time_s=run.wall_time_s, created_at=run.created_at, finished_at=run.finished_at,
        )  # fmt: skip


class RowIn(Body):
    prompt: StoredText = Field(min_length=1, max_length=MAX_ROW_CHARS)
    completion: StoredText = Field(min_length=1, max_length=MAX_ROW_CHARS)


class HyperparametersIn(Body):
    learning_rate: float = Field(default=5e-5, gt=0, le=1e-2)
    epochs: int = Field(default=1, ge=1, le=20)
    max_steps: int = Field(default=0, ge=0, le=100_000)
    batch_size: int = Field(default=8, ge=1, le=128)
    max_length: int = Field(default=256, ge=16, le=4096)
    eval_percent: int = Field(default=10, ge=5, le=50)
    eval_every_steps: int = Field(default=0, ge=0, le=100_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    lora_rank: int = Field(default=16, ge=1, le=256)


class TrainingRunIn(Body):
    """A supervised fine-tune (SFT) of a local model config on prompt/completion rows.
    Without `eval_rows`, `hyperparameters.eval_percent` % of the distinct prompts are held
    out; with them, they must share no prompt with `rows`."""

    parent_config: Id
    name: StoredText = Field(min_length=1, max_length=100)
    rows: list[RowIn] = Field(min_length=1, max_length=MAX_ROWS)
    eval_rows: list[RowIn] | None = Field(default=None, min_length=1, max_length=MAX_ROWS)
    hyperparameters: HyperparametersIn = Field(default_factory=HyperparametersIn)
    source: StoredText = Field(default="", max_length=300)


def _rows(rows: list[RowIn]) -> list[TrainingRow]:
    return [TrainingRow(prompt=row.prompt, completion=row.completion) for row in rows]


@training_runs_router.get("/", response={200: list[TrainingRunOut]} | errors(403))
def list_training_runs(request: HttpRequest) -> list[TrainingRunOut]:
    """The newest 200 runs, newest first."""
    return [TrainingRunOut.of(run) for run in training_runs()[:200]]


@training_runs_router.get("/{run_id}", response={200: TrainingRunOut} | errors(403, 404))
def get_training_run(request: HttpRequest, run_id: Id) -> TrainingRunOut:
    run = training_runs().filter(pk=run_id).first()
    if run is None:
        raise HttpError(404, "No such training run.")
    return TrainingRunOut.of(run)


@training_runs_router.post("/", response={202: TrainingRunOut} | errors(403, 404))
def start_training_run(request: HttpRequest, body: TrainingRunIn) -> Status:
    """Queue an SFT run; its result, once done, is a new model config (`result_config`).
    400 for a parent that is not a local transformers model, fewer rows than the server's
    minimum (LLM_TRAINING_MIN_ROWS), eval rows sharing a prompt with the training rows, or a
    name already taken."""
    parent = model_configs().filter(pk=body.parent_config).first()
    if parent is None:
        raise HttpError(404, "No such model config.")
    run = training_run_start(
        kind=TrainingKind.SFT_DISTIL, parent=parent, name=body.name, rows=_rows(body.rows),
        eval_rows=_rows(body.eval_rows) if body.eval_rows is not None else None,
        hyperparameters=SFTHyperparameters(**body.hyperparameters.model_dump()),
        source=body.source or "the API", user=api_user(request),
    )  # fmt: skip
    return Status(202, TrainingRunOut.of(TrainingRun.objects.get(pk=run.pk)))
