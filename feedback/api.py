"""The AI-feedback API (mounted by config/api.py at /api/ai-feedback/): start a labelling run
of a model annotator, follow it, read its agreement with people.

Researchers and admins only, like the pages; the same services and statistics run behind both.
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.errors import HttpError

from config.api_contract import Body, Id, ShareOut, api_user, errors, researchers
from feedback.agreement import Figure, run_agreement
from feedback.models import LabellingRun, RunStatus
from feedback.selectors import model_annotators
from feedback.services import FeedbackError, labelling_run_start

router = Router(tags=["AI feedback"], auth=researchers)


class FigureOut(Schema):
    reference: str
    n: int
    agreement: ShareOut
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None
    kappa_method: str
    categories: list[str]
    confusion: list[list[int]]  # rows: the model's answer; columns: the reference's

    @staticmethod
    def of(figure: Figure, method: str) -> FigureOut:
        low, high = figure.kappa_ci or (None, None)
        return FigureOut(
            reference=figure.reference, n=figure.n, agreement=ShareOut.of(figure.agree),
            kappa=figure.kappa, kappa_low=low, kappa_high=high, kappa_method=method,
            categories=figure.captions, confusion=figure.confusion,
        )  # fmt: skip


class PrincipleOut(Schema):
    principle: str  # "All" (overall) or P1, P2, …
    text: str
    labelled: int
    no_option: int
    order_disagreement: ShareOut | None
    vs_majority: FigureOut
    vs_gold: FigureOut


class DisagreementOut(Schema):
    item_id: int
    external_id: str
    model: str
    probability: float
    people: str


class AgreementOut(Schema):
    run: int
    weighting: str
    principles: list[PrincipleOut]
    strongest_disagreements: list[DisagreementOut]


class RunOut(Schema):
    id: int
    model_annotator: int
    queue: int
    constitution_version: int
    status: str
    method: str
    items_total: int
    items_done: int
    percent: int
    error: str
    created_at: datetime
    finished_at: datetime | None

    @staticmethod
    def of(run: LabellingRun) -> RunOut:
        return RunOut(
            id=run.pk, model_annotator=run.annotator_id, queue=run.annotator.queue_id,
            constitution_version=run.version.number, status=run.status, method=run.method,
            items_total=run.items_total, items_done=run.items_done, percent=run.percent,
            error=run.error, created_at=run.created_at, finished_at=run.finished_at,
        )  # fmt: skip


class RunIn(Body):
    """Nothing to choose yet: the run takes the constitution's newest version."""


def _run(run_id: int) -> LabellingRun:
    run = LabellingRun.objects.select_related("annotator__queue", "version").filter(pk=run_id)
    found = run.first()
    if found is None:
        raise HttpError(404, "No such labelling run.")
    return found


@router.post(
    "/model-annotators/{annotator_id}/runs", response={202: RunOut} | errors(403, 404, 409)
)
def run_start(request: HttpRequest, annotator_id: Id, body: RunIn) -> Status:
    """Queue a labelling run over every item of the annotator's queue; 409 while one is
    queued or running, or when the queue has no items; 422 when the annotator's model config
    cannot give probabilities (nothing is started)."""
    annotator = model_annotators().filter(pk=annotator_id).first()
    if annotator is None:
        raise HttpError(404, "No such model annotator.")
    try:
        run = labelling_run_start(annotator=annotator, user=api_user(request))
    except FeedbackError as error:
        raise HttpError(error.status, error.message) from None
    return Status(202, RunOut.of(_run(run.pk)))


@router.get("/runs/{run_id}", response={200: RunOut} | errors(403, 404))
def run_read(request: HttpRequest, run_id: Id) -> RunOut:
    return RunOut.of(_run(run_id))


@router.get("/runs/{run_id}/agreement", response={200: AgreementOut} | errors(403, 404, 409))
def agreement_read(request: HttpRequest, run_id: Id) -> AgreementOut:
    """Per principle and overall: raw agreement (Wilson 95 %) and Cohen's kappa (percentile
    bootstrap over items) against the human majority and against gold; 409 until the run is
    done."""
    run = _run(run_id)
    if run.status != RunStatus.DONE:
        raise HttpError(409, f"The run is {run.status}; agreement is read once it is done.")
    found = run_agreement(run)
    return AgreementOut(
        run=run.pk,
        weighting=found.weighting,
        principles=[
            PrincipleOut(
                principle=row.short,
                text=row.title,
                labelled=row.labelled,
                no_option=row.no_option,
                order_disagreement=(
                    ShareOut.of(row.order_disagreement) if row.order_disagreement else None
                ),
                vs_majority=FigureOut.of(row.vs_majority, found.kappa_method),
                vs_gold=FigureOut.of(row.vs_gold, found.kappa_method),
            )
            for row in found.rows
        ],  # fmt: skip
        strongest_disagreements=[
            DisagreementOut(
                item_id=d.item_id,
                external_id=d.external_id,
                model=d.model,
                probability=d.probability,
                people=d.people,
            )
            for d in found.strongest
        ],  # fmt: skip
    )
