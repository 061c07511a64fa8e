from asgiref.sync import async_to_sync
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from core.health import health_check
from core.jobs import job_retry, job_sources, jobs_open
from core.roles import Role, primary_role, role_required
from core.selectors import role_member_counts

HOME_FOR_ROLE = {
    Role.ADMIN: "operations_home",
    Role.RESEARCHER: "researcher_home",
    Role.ANNOTATOR: "annotator_home",
}


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    role = primary_role(request.user)
    if role is None:
        return render(request, "core/no_role.html", status=403)
    return redirect(HOME_FOR_ROLE[role])


@require_GET
@role_required(Role.ANNOTATOR)
def annotator_home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/annotator_home.html")


@require_GET
@role_required(Role.RESEARCHER)
def researcher_home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/researcher_home.html")


@require_GET
@role_required(Role.ADMIN)
def operations_home(request: HttpRequest) -> HttpResponse:
    context = {"role_counts": role_member_counts(), "jobs": jobs_open(), "sources": job_sources()}
    return render(request, "core/operations_home.html", context)


class JobRetryForm(forms.Form):
    source = forms.CharField(max_length=50)
    pk = forms.IntegerField(min_value=1, max_value=2**63 - 1)


@require_POST
@role_required(Role.ADMIN)
def operations_job_retry(request: HttpRequest) -> HttpResponse:
    form = JobRetryForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Bad retry request.", status=400)
    try:
        job_retry(source=form.cleaned_data["source"], pk=form.cleaned_data["pk"])
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Started again.")
    return redirect("operations_home")


@never_cache
@require_GET
@role_required(Role.ADMIN)
def operations_health(request: HttpRequest) -> HttpResponse:
    health = async_to_sync(health_check)()
    return render(request, "core/operations_home.html#health", {"health": health})


@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    health = await health_check()
    return JsonResponse(health.as_dict(), status=200 if health.ok else 503)


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponsePermanentRedirect(static("favicon.svg"))
