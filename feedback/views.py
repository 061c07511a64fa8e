"""Researchers' AI-feedback pages: constitutions, model annotators, labelling runs."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.roles import Role, role_required, signed_in_user
from feedback.agreement import run_agreement
from feedback.forms import ConstitutionForm, ModelAnnotatorForm, ModelAnnotatorNewForm, VersionForm
from feedback.models import LabellingRun, ModelAnnotator, RunStatus
from feedback.prompts import kind_shape
from feedback.routing import shortcut_report
from feedback.selectors import constitutions, model_annotators, run_labels_sample, runs_of
from feedback.services import (
    FeedbackError,
    constitution_create,
    constitution_version_add,
    labelling_run_start,
    model_annotator_save,
    routing_apply,
)


@require_GET
@role_required(Role.RESEARCHER)
def home(request: HttpRequest) -> HttpResponse:
    context = {"constitutions": constitutions(), "annotators": model_annotators()}
    return render(request, "feedback/home.html", context)


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def constitution_new(request: HttpRequest) -> HttpResponse:
    form = ConstitutionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            constitution = constitution_create(
                name=form.cleaned_data["name"],
                principles=form.cleaned_data["principles"],
                user=signed_in_user(request),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Created {constitution.name}.")
            return redirect("feedback:constitution_detail", pk=constitution.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "feedback/constitution_new.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def constitution_detail(request: HttpRequest, pk: int) -> HttpResponse:
    constitution = get_object_or_404(constitutions(), pk=pk)
    latest = constitution.latest_version
    initial = "\n".join(p.text for p in latest.principles.all()) if latest else ""
    form = VersionForm(request.POST or None, initial={"principles": initial})
    if request.method == "POST" and form.is_valid():
        version = constitution_version_add(
            constitution=constitution,
            principles=form.cleaned_data["principles"],
            user=signed_in_user(request),
        )
        messages.success(request, f"Saved version {version.number}; earlier labels are kept.")
        return redirect("feedback:constitution_detail", pk=constitution.pk)
    status = 400 if request.method == "POST" else 200
    context = {"constitution": constitution, "form": form}
    return render(request, "feedback/constitution_detail.html", context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def annotator_new(request: HttpRequest) -> HttpResponse:
    asked = ModelAnnotatorNewForm(request.GET)
    initial = {}
    if asked.is_valid() and asked.cleaned_data["queue"]:
        initial["queue"] = asked.cleaned_data["queue"]
    form = ModelAnnotatorForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            annotator = model_annotator_save(
                annotator=form.save(commit=False), user=signed_in_user(request)
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Added {annotator.name} to {annotator.queue.name}.")
            return redirect("feedback:annotator_detail", pk=annotator.pk)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "annotator": None}
    return render(request, "feedback/annotator_form.html", context, status=status)


def _annotator_context(annotator: ModelAnnotator) -> dict[str, object]:
    runs = list(runs_of(annotator)[:20])
    return {
        "annotator": annotator,
        "runs": runs,
        "open_run": next((run for run in runs if not run.finished), None),
        "prompt": annotator.prompt.strip() or kind_shape(annotator.queue.item_kind).default,
        "fields": kind_shape(annotator.queue.item_kind).fields,
    }


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def annotator_detail(request: HttpRequest, pk: int) -> HttpResponse:
    annotator = get_object_or_404(model_annotators(), pk=pk)
    form = ModelAnnotatorForm(request.POST or None, instance=annotator)
    if request.method == "POST" and form.is_valid():
        try:
            model_annotator_save(annotator=form.save(commit=False), user=signed_in_user(request))
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Saved {annotator.name}.")
            return redirect("feedback:annotator_detail", pk=annotator.pk)
    context = _annotator_context(annotator) | {"form": form}
    status = 400 if request.method == "POST" else 200
    return render(request, "feedback/annotator_detail.html", context, status=status)


@require_POST
@role_required(Role.RESEARCHER)
def run_start(request: HttpRequest, pk: int) -> HttpResponse:
    annotator = get_object_or_404(model_annotators(), pk=pk)
    try:
        run = labelling_run_start(annotator=annotator, user=signed_in_user(request))
    except FeedbackError as error:
        messages.error(request, error.message)
        return redirect("feedback:annotator_detail", pk=annotator.pk)
    return redirect("feedback:run_detail", pk=run.pk)


def _run(pk: int) -> LabellingRun:
    run = (
        LabellingRun.objects.select_related(
            "annotator__queue", "annotator__model_config", "version__constitution", "created_by"
        )
        .filter(pk=pk)
        .first()
    )
    if run is None:
        raise Http404("No such labelling run.")
    return run


@require_GET
@role_required(Role.RESEARCHER)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(pk)
    done = run.status == RunStatus.DONE
    context = {
        "run": run,
        "agreement": run_agreement(run) if done else None,
        "shortcut": shortcut_report(run) if done else None,
        "labels": run_labels_sample(run) if done else [],
    }
    if request.htmx and not done:  # type: ignore[attr-defined]
        return render(request, "feedback/run_detail.html#progress", context)
    if request.htmx:  # type: ignore[attr-defined]
        # Finished while the page polled: the whole page, with its agreement.
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return render(request, "feedback/run_detail.html", context)


@require_POST
@role_required(Role.RESEARCHER)
def run_route(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(pk)
    try:
        written = routing_apply(run=run)
    except FeedbackError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"{run.annotator.queue.name} now sends people first the items where the model is "
            f"unsure or disagrees ({written} items scored).",
        )
    return redirect("feedback:run_detail", pk=run.pk)
