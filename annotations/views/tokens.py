"""API tokens page: annotators and researchers make and revoke their own bearer tokens."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from annotations.forms import ApiTokenForm
from annotations.models import ApiToken
from annotations.services import TokenNotFound, api_token_create, api_token_revoke
from core.roles import Role, role_required, signed_in_user


# The secret is in the page only in the response to the POST that made it: never cached.
@never_cache
@require_http_methods(["GET", "POST"])
@role_required(Role.ANNOTATOR, Role.RESEARCHER)
def tokens(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    form = ApiTokenForm(request.POST or None)
    secret = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                secret = api_token_create(user=user, name=form.cleaned_data["name"])
                form = ApiTokenForm()
            except ValidationError as error:
                form.add_error("name", error)
        if secret is None:
            status = 400
    context = {
        "tokens": ApiToken.objects.filter(user=user).order_by("-created_at"),
        "form": form,
        "secret": secret,
        "api_queues_url": request.build_absolute_uri(reverse("api:queue_list")),
    }
    return render(request, "annotations/tokens.html", context, status=status)


@require_POST
@role_required(Role.ANNOTATOR, Role.RESEARCHER)
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        api_token_revoke(user=signed_in_user(request), token_id=pk)
    except TokenNotFound as error:
        raise Http404(error.message) from None
    messages.success(request, "Token revoked: it no longer works.")
    return redirect("annotations:tokens")
