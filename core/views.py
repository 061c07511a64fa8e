from asgiref.sync import async_to_sync
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.forms import WebhookEnabledForm, WebhookEndpointForm
from core.health import health_check
from core.jobs import job_retry, job_sources, jobs_open
from core.models import WebhookEndpoint, WebhookEvent
from core.roles import Role, primary_role, role_required, signed_in_user, user_has_role
from core.selectors import role_member_counts
from core.webhooks import (
    WebhookError,
    webhook_endpoint_create,
    webhook_endpoint_enable,
    webhook_redeliver,
)

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


# --- webhooks -------------------------------------------------------------------------------
def _endpoints_for(request: HttpRequest) -> QuerySet[WebhookEndpoint]:
    """A researcher's own endpoints; an admin sees everyone's."""
    endpoints = WebhookEndpoint.objects.select_related("owner")
    if user_has_role(request.user, Role.ADMIN):
        return endpoints
    return endpoints.filter(owner=signed_in_user(request))


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def webhooks(request: HttpRequest) -> HttpResponse:
    form = WebhookEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = webhook_endpoint_create(
                owner=signed_in_user(request), name=form.cleaned_data["name"],
                url=form.cleaned_data["url"], events=form.cleaned_data["events"],
                own_hosts=[request.get_host()],
            )  # fmt: skip
        except ValidationError as error:
            form.add_error("url" if error.code in _URL_CODES else None, error)
        else:
            messages.success(request, "Endpoint registered. Its secret is below.")
            return redirect("webhook_detail", pk=endpoint.pk)
    status = 400 if form.errors else 200
    context = {"endpoints": _endpoints_for(request), "form": form}
    return render(request, "core/webhooks.html", context, status=status)


_URL_CODES = {"invalid", "scheme", "host", "loop", None}


@require_GET
@role_required(Role.RESEARCHER)
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(_endpoints_for(request), pk=pk)
    deliveries = endpoint.deliveries.order_by("-created_at", "-id")[:50]
    context = {"endpoint": endpoint, "deliveries": deliveries, "events": WebhookEvent}
    return render(request, "core/webhook_detail.html", context)


@require_POST
@role_required(Role.RESEARCHER)
def webhook_enabled(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(_endpoints_for(request), pk=pk)
    form = WebhookEnabledForm(request.POST)
    form.is_valid()  # a missing box is False: nothing else to refuse
    enabled = form.cleaned_data.get("enabled", False)
    webhook_endpoint_enable(endpoint=endpoint, enabled=enabled)
    messages.success(request, "Endpoint enabled." if enabled else "Endpoint disabled.")
    return redirect("webhook_detail", pk=endpoint.pk)


@require_POST
@role_required(Role.RESEARCHER)
def webhook_redeliver_view(request: HttpRequest, pk: int, delivery_pk: int) -> HttpResponse:
    endpoint = get_object_or_404(_endpoints_for(request), pk=pk)
    delivery = get_object_or_404(endpoint.deliveries.select_related("endpoint"), pk=delivery_pk)
    try:
        webhook_redeliver(delivery=delivery)
    except WebhookError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Sent again, with the same idempotency key.")
    return redirect("webhook_detail", pk=endpoint.pk)
