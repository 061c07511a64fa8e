"""Participant pages (the study link: consent, instructions, the task, the end) and the
researcher's pages (the experiment with its analysis, the link, assistance jobs, exports).

A participant's pages carry their arm's task and nothing else: never gold, never an arm's
name, never another arm's material, and assistance only when their arm gives it."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations.forms import LabelForm, LeaseForm
from annotations.kinds import Payload
from annotations.markdown import markdown_html
from annotations.models import Assignment
from annotations.services import AnnotationError, assignment_release
from core.ratelimit import rate_limited
from core.roles import Role, role_required
from experiments.analysis import experiment_analysis, experiment_label_rows
from experiments.charts import accuracy_svg, reliability_svg
from experiments.errors import ExperimentError, LinkClosed, NotYours
from experiments.forms import ConsentForm, FlagForm, JoinForm, LinkForm, ProbabilityLabelForm
from experiments.models import Arm, AssistanceJob, AssistanceText, Experiment, Participant
from experiments.protocols import arm_transcripts_start
from experiments.selectors import participant_rows
from experiments.services import (
    assistance_flag,
    assistance_for_lease,
    assistance_job_start,
    experiment_link_set,
    participant_consent,
    participant_join,
    participant_lease,
    participant_prefetch,
    response_submit,
    response_time_out,
)

WORK = "experiments/task.html#work"
AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"


# --- participants --------------------------------------------------------------------------
def _participant(request: HttpRequest, slug: str) -> Participant:
    """The signed-in participant of this experiment, or 404 (anyone else, any other study)."""
    if not request.user.is_authenticated:
        raise Http404("No such study page.")
    found = (
        Participant.objects.select_related("arm__queue", "arm__model_config", "experiment", "user")
        .filter(user=request.user.pk, experiment__slug=slug)
        .first()
    )
    if found is None:
        raise Http404("No such study page.")
    return found


@never_cache
@require_GET
@rate_limited(scope="join", limit=lambda: settings.STUDY_JOIN_RATE_LIMIT, window_s=60)
@rate_limited(
    scope="join-experiment",
    limit=lambda: settings.STUDY_JOIN_RATE_LIMIT_PER_EXPERIMENT,
    window_s=60,
    key=lambda request, slug: slug,
)
def join(request: HttpRequest, slug: str) -> HttpResponse:
    experiment = get_object_or_404(Experiment, slug=slug)
    form = JoinForm(request.GET)
    if not form.is_valid():
        return render(
            request, "experiments/refused.html",
            {"message": "This study link is incomplete: open it from the study's page, which "
                        "adds your participant, study and session ids."},
            status=400,
        )  # fmt: skip
    try:
        participant, _ = participant_join(
            experiment=experiment,
            external_id=form.cleaned_data["PROLIFIC_PID"],
            study_id=form.cleaned_data["STUDY_ID"],
            session_id=form.cleaned_data["SESSION_ID"],
        )
    except LinkClosed as closed:
        context = {"message": closed.message}
        return render(request, "experiments/refused.html", context, status=closed.status)
    login(request, participant.user, backend=AUTH_BACKEND)
    return redirect(_next_page(participant))


def _next_page(participant: Participant) -> str:
    slug = participant.experiment.slug
    if participant.consented_at is None:
        return reverse("experiments:consent", args=[slug])
    if participant.completed_at is not None:
        return reverse("experiments:done", args=[slug])
    return reverse("experiments:task", args=[slug])


@never_cache
@require_http_methods(["GET", "POST"])
def consent(request: HttpRequest, slug: str) -> HttpResponse:
    participant = _participant(request, slug)
    form = ConsentForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        participant_consent(participant=participant)
        return redirect("experiments:instructions", slug=slug)
    context = {"form": form, "text": markdown_html(participant.experiment.consent)}
    return render(request, "experiments/consent.html", context)


@never_cache
@require_GET
def instructions(request: HttpRequest, slug: str) -> HttpResponse:
    participant = _participant(request, slug)
    if participant.consented_at is None:
        return redirect("experiments:consent", slug=slug)
    arm = participant.arm
    context = {
        "slug": slug,
        "text": markdown_html(participant.experiment.instructions),
        "time_limit_s": arm.time_limit_s,
        "assisted": arm.assisted,
        "judging": bool(arm.protocol),
        "transcripts": arm.transcripts,
    }
    return render(request, "experiments/instructions.html", context)


@dataclass(frozen=True)
class ShownItem:
    """A lease as the task page shows it: its item, the assistance beside it (only an
    assisted arm reads any) and a request id for the one label it may carry."""

    lease: Assignment
    payload: Payload
    assistance: AssistanceText | None
    request_id: uuid.UUID


def _shown(participant: Participant, lease: Assignment | None) -> ShownItem | None:
    if lease is None:
        return None
    kind = participant.arm.queue.item_kind
    return ShownItem(
        lease=lease,
        payload=lease.item.typed_payload(kind),
        assistance=assistance_for_lease(participant, lease),
        request_id=uuid.uuid4(),
    )


def _prefetches(arm: Arm) -> bool:
    """Whether the task page holds the next item ahead (the labelling page's queue.js swaps it
    in on the key). Not for a timed arm, whose item's clock the server starts when it serves
    the item, nor for a judging arm, whose probability is typed, not keyed."""
    return arm.time_limit_s is None and not arm.protocol


def _work(
    participant: Participant, *, notice: str = "", error: str = "", renew_ahead: bool = False
) -> dict[str, Any]:
    """The task area: the participant's current item and, where the arm allows (_prefetches),
    the next one held ahead, each with their arm's assistance for it; the seconds left on the
    current one by the server's clock."""
    arm = participant.arm
    prefetch = _prefetches(arm)
    if prefetch:
        held = participant_prefetch(participant=participant, renew_ahead=renew_ahead)
        lease, ahead = held.current, held.ahead
    else:
        lease, ahead = participant_lease(participant=participant), None
    remaining_ms = None
    if lease is not None and arm.time_limit_s is not None:
        spent = (timezone.now() - lease.created_at).total_seconds()
        remaining_ms = max(0, int((arm.time_limit_s - spent) * 1000))
    return {
        "slug": participant.experiment.slug,
        "kind": arm.queue.item_kind,
        "lease": lease,
        "current": _shown(participant, lease),
        "ahead": _shown(participant, ahead),
        "prefetch": prefetch,
        "assisted": arm.assisted,
        # Question-bank arms answer with a probability, as a debate judge does.
        "judging": bool(arm.protocol),
        "time_limit_s": arm.time_limit_s,
        "remaining_ms": remaining_ms,
        "notice": notice,
        "error": error,
    }


def _respond(request: HttpRequest, participant: Participant, context: dict[str, Any]) -> Any:
    if context["lease"] is None:
        done_url = reverse("experiments:done", args=[participant.experiment.slug])
        if request.htmx:  # type: ignore[attr-defined]
            response = HttpResponse(status=204)
            response["HX-Redirect"] = done_url
            return response
        return redirect(done_url)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, WORK, context)
    return redirect("experiments:task", slug=participant.experiment.slug)


@never_cache
@require_GET
def task(request: HttpRequest, slug: str) -> HttpResponse:
    participant = _participant(request, slug)
    if participant.consented_at is None:
        return redirect("experiments:consent", slug=slug)
    # A fresh page holds a fresh item ahead: the page it replaces gives back its own as it goes.
    context = _work(participant, renew_ahead=True)
    if context["lease"] is None:
        return redirect("experiments:done", slug=slug)
    return render(request, "experiments/task.html", context)


@never_cache
@require_POST
def task_label(request: HttpRequest, slug: str) -> HttpResponse:
    participant = _participant(request, slug)
    form: LabelForm | ProbabilityLabelForm
    if participant.arm.protocol:
        form = ProbabilityLabelForm(request.POST)
    else:
        form = LabelForm(request.POST, kind=participant.arm.queue.item_kind)
    if not form.is_valid():
        problems = " ".join(str(error) for errors in form.errors.values() for error in errors)
        return _respond(request, participant, _work(participant, error=problems))
    try:
        response_submit(
            participant=participant,
            assignment_id=form.cleaned_data["assignment"],
            value=form.value(),
            time_spent_ms=form.cleaned_data["time_ms"],
            client_request_id=form.cleaned_data["request_id"],
        )
    except NotYours as missing:
        raise Http404(missing.message) from None
    except AnnotationError as problem:
        return _respond(request, participant, _work(participant, notice=problem.message))
    except ValidationError as problem:
        error = " ".join(problem.messages)
        return _respond(request, participant, _work(participant, error=error))
    return _respond(request, participant, _work(participant))


@never_cache
@require_POST
def task_timeout(request: HttpRequest, slug: str) -> HttpResponse:
    participant = _participant(request, slug)
    form = LeaseForm(request.POST)
    if not form.is_valid():
        return _respond(request, participant, _work(participant, error="No item to time out."))
    try:
        response_time_out(participant=participant, assignment_id=form.cleaned_data["assignment"])
    except NotYours as missing:
        raise Http404(missing.message) from None
    except ExperimentError as problem:
        return _respond(request, participant, _work(participant, notice=problem.message))
    return _respond(request, participant, _work(participant, notice="Time is up: next item."))


@never_cache
@require_POST
def task_release(request: HttpRequest, slug: str) -> HttpResponse:
    """The task page goes away (queue.js, sendBeacon on pagehide): give back the item it held
    ahead, unseen. 204 when released; 409 when that lease is no longer held ahead."""
    participant = _participant(request, slug)
    form = LeaseForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Which lease? " + form.errors.as_text(), status=400)
    try:
        assignment_release(
            assignment_id=form.cleaned_data["assignment"],
            annotator=participant.user,
            queue_id=participant.arm.queue_id,
        )
    except AnnotationError as problem:
        return HttpResponse(problem.message, status=problem.status)
    return HttpResponse(status=204)


@never_cache
@require_POST
def task_flag(request: HttpRequest, slug: str) -> HttpResponse:
    participant = _participant(request, slug)
    form = FlagForm(request.POST)
    if not form.is_valid():
        raise Http404("No such item.")
    try:
        assistance_flag(
            participant=participant,
            assignment_id=form.cleaned_data["assignment"],
            flag=form.cleaned_data["flag"],
        )
    except NotYours as missing:
        raise Http404(missing.message) from None
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "experiments/_flag_done.html", {"flag": form.cleaned_data["flag"]})
    return redirect("experiments:task", slug=slug)


@never_cache
@require_GET
def done(request: HttpRequest, slug: str) -> HttpResponse:
    participant = _participant(request, slug)
    if participant.completed_at is None:
        return redirect(_next_page(participant))
    experiment = participant.experiment
    redirect_url = ""
    if experiment.completion_url:
        joiner = "&" if "?" in experiment.completion_url else "?"
        redirect_url = f"{experiment.completion_url}{joiner}cc={experiment.completion_code}"
    context = {"code": experiment.completion_code, "redirect_url": redirect_url}
    return render(request, "experiments/done.html", context)


# --- researchers ---------------------------------------------------------------------------
@require_GET
@role_required(Role.RESEARCHER)
def experiment_list(request: HttpRequest) -> HttpResponse:
    experiments = Experiment.objects.select_related("question_set", "question_bank").order_by(
        "-created_at"
    )
    return render(request, "experiments/list.html", {"experiments": experiments})


def _jobs(experiment: Experiment) -> list[tuple[Arm, AssistanceJob | None]]:
    return [
        (arm, arm.assistance_jobs.first())
        for arm in experiment.arms.order_by("position").select_related("debate_batch")
        if arm.assisted or arm.transcripts
    ]


@require_GET
@role_required(Role.RESEARCHER)
def experiment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = get_object_or_404(
        Experiment.objects.select_related("question_set", "question_bank"), pk=pk
    )
    analysis = experiment_analysis(experiment)
    study_link = request.build_absolute_uri(reverse("experiments:join", args=[experiment.slug]))
    context = {
        "experiment": experiment,
        "analysis": analysis,
        "chart": accuracy_svg(analysis),
        "reliability": reliability_svg(analysis),
        "calibrated": [row for row in analysis.arms if row.calibration is not None],
        "jobs": _jobs(experiment),
        "study_link": study_link + "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}"
        "&SESSION_ID={{%SESSION_ID%}}",
    }
    return render(request, "experiments/detail.html", context)


@require_GET
@role_required(Role.RESEARCHER)
def jobs_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = get_object_or_404(Experiment, pk=pk)
    context = {"experiment": experiment, "jobs": _jobs(experiment)}
    return render(request, "experiments/detail.html#jobs", context)


@require_POST
@role_required(Role.RESEARCHER)
def link_set(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = get_object_or_404(Experiment, pk=pk)
    form = LinkForm(request.POST)
    form.is_valid()
    experiment_link_set(experiment=experiment, open=bool(form.cleaned_data.get("open")))
    return redirect("experiments:detail", pk=pk)


@require_POST
@role_required(Role.RESEARCHER)
def generate(request: HttpRequest, pk: int, arm_pk: int) -> HttpResponse:
    arm = get_object_or_404(Arm, pk=arm_pk, experiment=pk)
    try:
        if arm.transcripts:
            arm_transcripts_start(arm=arm, user=request.user)  # type: ignore[arg-type]
        else:
            assistance_job_start(arm=arm)
    except ValidationError:
        raise Http404("That arm gives no assistance.") from None
    return redirect("experiments:detail", pk=pk)


@require_GET
@role_required(Role.RESEARCHER)
def labels_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    experiment = get_object_or_404(Experiment, pk=pk)
    if fmt not in ("csv", "parquet"):
        raise Http404("Labels export as csv or parquet.")
    rows = experiment_label_rows(experiment)
    columns = ["participant", "arm", "item", "value", "correct", "probability_correct", "late",
               "timed_out", "time_ms", "answered_at"]  # fmt: skip
    name = f"experiment-{experiment.pk}-labels.{fmt}"
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({column: [getattr(row, column) for row in rows] for column in columns})
        sink = io.BytesIO()
        pq.write_table(table, sink)
        response = HttpResponse(sink.getvalue(), content_type="application/vnd.apache.parquet")
    else:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([getattr(row, column) for column in columns])
        response = HttpResponse(text.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@role_required(Role.RESEARCHER)
def participants_export(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = get_object_or_404(Experiment, pk=pk)
    text = io.StringIO()
    writer = csv.writer(text)
    columns = ["external_id", "study_id", "session_id", "arm", "items", "time_s", "correct",
               "counted", "accuracy", "late", "timed_out", "completed"]  # fmt: skip
    writer.writerow(columns)
    for row in participant_rows(experiment):
        writer.writerow([getattr(row, column) for column in columns])
    response = HttpResponse(text.getvalue(), content_type="text/csv; charset=utf-8")
    name = f"experiment-{experiment.pk}-participants.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
