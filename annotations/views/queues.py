"""Researchers' queue pages: list, create, edit, import items, the quality dashboard."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations.dashboard import dashboard_annotators, dashboard_sections
from annotations.forms import ExportForm, ImportForm, NewQueueKindForm, QueueForm
from annotations.importers import ImportFailed, items_import
from annotations.models import Queue
from annotations.quality import (
    annotator_stats,
    bar_chart,
    disagreements,
    label_distribution,
    labels_over_time,
    queue_agreement,
    time_histogram,
)
from annotations.rater_errors import rater_errors
from annotations.selectors import queue_stats, queues_for_researcher
from annotations.services import (
    queue_members_set,
    queue_save,
)
from core.roles import Role, role_required, signed_in_user


@require_GET
@role_required(Role.RESEARCHER)
def queue_admin(request: HttpRequest) -> HttpResponse:
    rows = [(queue, queue_stats(queue)) for queue in queues_for_researcher()]
    return render(request, "annotations/queue_admin.html", {"rows": rows})


def _save(request: HttpRequest, form: QueueForm) -> Queue:
    with transaction.atomic():
        queue = queue_save(queue=form.instance, user=signed_in_user(request))
        queue_members_set(queue=queue, users=form.cleaned_data["member_users"])
    return queue


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def queue_create(request: HttpRequest) -> HttpResponse:
    asked = NewQueueKindForm(request.GET)
    initial = {"kind": asked.cleaned_data["kind"]} if asked.is_valid() else {}
    form = QueueForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        queue = _save(request, form)
        messages.success(request, f"Created {queue.name}. Import its items below.")
        return redirect("annotations:queue_detail", pk=queue.pk)
    return render(request, "annotations/queue_form.html", {"form": form, "queue": None})


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def queue_detail(request: HttpRequest, pk: int) -> HttpResponse:
    queue = get_object_or_404(Queue, pk=pk)
    form = QueueForm(request.POST or None, instance=queue)
    if request.method == "POST" and form.is_valid():
        _save(request, form)
        messages.success(request, f"Saved {queue.name}.")
        return redirect("annotations:queue_detail", pk=queue.pk)
    return render(request, "annotations/queue_form.html", _detail_context(queue, form=form))


def _detail_context(
    queue: Queue, *, form: QueueForm | None = None, import_form: ImportForm | None = None
) -> dict[str, object]:
    return {
        "queue": queue,
        "form": form or QueueForm(instance=queue),
        "import_form": import_form or ImportForm(),
        "export_form": ExportForm(initial={"queues": [queue.pk]}),
        "stats": queue_stats(queue),
        "import_errors": [],
    }


@require_POST
@role_required(Role.RESEARCHER)
def queue_import(request: HttpRequest, pk: int) -> HttpResponse:
    queue = get_object_or_404(Queue, pk=pk)
    form = ImportForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            count = items_import(queue=queue, data=upload.read(), fmt=form.cleaned_data["format"])
        except ImportFailed as failure:
            context = _detail_context(queue, import_form=form)
            context["import_errors"] = failure.messages
            return render(request, "annotations/queue_form.html", context, status=400)
        messages.success(request, f"Imported {count} items into {queue.name}.")
        return redirect("annotations:queue_detail", pk=queue.pk)
    context = _detail_context(queue, import_form=form)
    return render(request, "annotations/queue_form.html", context, status=400)


@require_GET
@role_required(Role.RESEARCHER)
def dashboard(request: HttpRequest, pk: int) -> HttpResponse:
    queue = get_object_or_404(Queue, pk=pk)
    annotators = annotator_stats(queue) + dashboard_annotators(queue)
    names = [stats.username for stats in annotators]
    charts = [
        bar_chart(
            "Labels", [(name, float(s.labels)) for name, s in zip(names, annotators, strict=True)]
        ),
        bar_chart(
            "Gold accuracy (%)",
            [
                (s.username, None if s.gold_accuracy is None else 100 * s.gold_accuracy)
                for s in annotators
            ],
            top=100.0,
        ),
        bar_chart(
            "Labels per hour on items",
            [(s.username, s.labels_per_hour) for s in annotators],
        ),
        time_histogram(queue),
        labels_over_time(queue),
    ]
    context = {
        "queue": queue,
        "stats": queue_stats(queue),
        "annotators": annotators,
        "agreement": queue_agreement(queue),
        "charts": charts,
        "distribution": label_distribution(queue),
        "disagreements": disagreements(queue),
        "sections": dashboard_sections(queue),
        "rater_errors": rater_errors(queue),
    }
    return render(request, "annotations/dashboard.html", context)
