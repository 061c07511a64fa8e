"""Researchers' export pages: start an export, watch it, download the file."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from annotations.forms import ExportForm
from annotations.models import ExportJob, JobStatus
from annotations.selectors import export_descriptions, export_jobs_visible
from annotations.services import (
    ExportNotReady,
    export_expired,
    export_file,
    export_start,
)
from core.roles import Role, role_required, signed_in_user


def _jobs_for(request: HttpRequest) -> QuerySet[ExportJob]:
    return export_jobs_visible(signed_in_user(request))


def _list_context(request: HttpRequest, form: ExportForm) -> dict[str, Any]:
    return {"exports": export_descriptions(_jobs_for(request)[:50]), "export_form": form}


def _detail_context(job: ExportJob) -> dict[str, Any]:
    return {"job": job, "export": export_descriptions([job])[0]}


@require_GET
@role_required(Role.RESEARCHER)
def export_list(request: HttpRequest) -> HttpResponse:
    return render(request, "annotations/exports.html", _list_context(request, ExportForm()))


@require_POST
@role_required(Role.RESEARCHER)
def export_create(request: HttpRequest) -> HttpResponse:
    form = ExportForm(request.POST)
    if not form.is_valid():
        context = _list_context(request, form)
        return render(request, "annotations/exports.html", context, status=400)
    job = export_start(user=signed_in_user(request), spec=form.spec)
    return redirect("annotations:export_detail", pk=job.pk)


@never_cache
@require_GET
@role_required(Role.RESEARCHER)
def export_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(_jobs_for(request), pk=pk)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "annotations/export_detail.html#job", {"job": job})
    return render(request, "annotations/export_detail.html", _detail_context(job))


@require_GET
@role_required(Role.RESEARCHER)
def export_download(request: HttpRequest, pk: int) -> HttpResponse | FileResponse:
    job = get_object_or_404(_jobs_for(request), pk=pk, status=JobStatus.DONE)
    if export_expired(job):  # the detail page, saying so, with 410 Gone
        context = _detail_context(job)
        return render(request, "annotations/export_detail.html", context, status=410)
    try:
        found = export_file(job)
    except ExportNotReady as error:
        raise Http404(error.message) from None
    return FileResponse(
        found.path.open("rb"),
        as_attachment=True,
        filename=found.file_name,
        content_type=found.content_type,
    )
