"""Researchers' export pages: start an export, watch it, download the file."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from annotations.exports import CONTENT_TYPES, EXTENSIONS, ExportSpec
from annotations.forms import ExportForm
from annotations.models import ExportJob, JobStatus
from annotations.services import (
    export_expired,
    export_path,
    export_start,
)
from core.roles import Role, role_required, signed_in_user, user_has_role


def _jobs_for(request: HttpRequest) -> QuerySet[ExportJob]:
    """A researcher's own export jobs; admins see everyone's."""
    user = signed_in_user(request)
    jobs = ExportJob.objects.select_related("created_by")
    return jobs if user_has_role(user, Role.ADMIN) else jobs.filter(created_by=user)


@require_GET
@role_required(Role.RESEARCHER)
def export_list(request: HttpRequest) -> HttpResponse:
    context = {"jobs": _jobs_for(request)[:50], "export_form": ExportForm()}
    return render(request, "annotations/exports.html", context)


@require_POST
@role_required(Role.RESEARCHER)
def export_create(request: HttpRequest) -> HttpResponse:
    form = ExportForm(request.POST)
    if not form.is_valid():
        context = {"jobs": _jobs_for(request)[:50], "export_form": form}
        return render(request, "annotations/exports.html", context, status=400)
    job = export_start(user=signed_in_user(request), spec=form.spec)
    return redirect("annotations:export_detail", pk=job.pk)


@never_cache
@require_GET
@role_required(Role.RESEARCHER)
def export_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(_jobs_for(request), pk=pk)
    template = "annotations/export_detail.html"
    if request.htmx:  # type: ignore[attr-defined]
        template += "#job"
    return render(request, template, {"job": job, "spec": ExportSpec.model_validate(job.spec)})


@require_GET
@role_required(Role.RESEARCHER)
def export_download(request: HttpRequest, pk: int) -> HttpResponse | FileResponse:
    job = get_object_or_404(_jobs_for(request), pk=pk, status=JobStatus.DONE)
    if export_expired(job):  # the detail page, saying so, with 410 Gone
        context = {"job": job, "spec": ExportSpec.model_validate(job.spec)}
        return render(request, "annotations/export_detail.html", context, status=410)
    path = export_path(job)
    if not path.is_file():
        raise Http404("The export file is gone.")
    spec = ExportSpec.model_validate(job.spec)
    extension = EXTENSIONS[spec.format]
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"arbiter-labels-{job.pk}-{spec.format}.{extension}",
        content_type=CONTENT_TYPES[extension],
    )
