from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.roles import Role, role_required, signed_in_user
from debate.forms import (
    DebateFilterForm,
    DebateForm,
    DebatesToQueueForm,
    JudgeTurnForm,
    PriorForm,
    ProtocolPromptForm,
    judge_forms,
)
from debate.models import Protocol, ProtocolPrompt, Speech
from debate.research.markets import market_create
from debate.selectors import (
    Viewer,
    debate_view,
    debate_viewer,
    debates_filtered,
    debates_for_judge,
    debates_page,
)
from debate.services import (
    debate_create,
    debate_prior_submit,
    debates_to_queue,
    judge_turn_submit,
    protocol_prompt_save,
    speech_retry,
)


def _viewer_or_404(request: HttpRequest, pk: int) -> Viewer:
    viewer = debate_viewer(request.user, pk)
    if viewer is None:
        raise Http404("No such debate.")
    return viewer


def _judge_or_404(request: HttpRequest, pk: int) -> None:
    if debate_viewer(request.user, pk) != "judge":
        raise Http404("No such debate.")


@require_GET
@role_required(Role.ANNOTATOR)
def my_debates(request: HttpRequest) -> HttpResponse:
    debates = debates_for_judge(signed_in_user(request))
    return render(request, "debate/my_debates.html", {"debates": debates})


@require_GET
@role_required(Role.RESEARCHER)
def debate_list(request: HttpRequest) -> HttpResponse:
    form = DebateFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    debates = debates_filtered(
        status=filters.get("status", ""),
        protocol=filters.get("protocol", ""),
        origin=filters.get("source", ""),
        query=filters.get("q", ""),
    )
    page = debates_page(debates, filters.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode(),
               "queue_form": DebatesToQueueForm()}  # fmt: skip
    return render(request, "debate/debate_list.html", context)


@require_POST
@role_required(Role.RESEARCHER)
def debates_to_queue_view(request: HttpRequest) -> HttpResponse:
    form = DebatesToQueueForm(request.POST)
    if form.is_valid():
        queue = form.cleaned_data["queue"]
        try:
            added = debates_to_queue(queue=queue)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Added {added} judged debate{pluralize(added)} to {queue}.")
    else:
        messages.error(request, "Choose a debate-judgment queue.")
    return redirect("debate:list")


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def debate_new(request: HttpRequest) -> HttpResponse:
    form = DebateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = signed_in_user(request)
        try:
            if form.cleaned_data["protocol"] == Protocol.MARKET:
                debate = market_create(debate=form.instance, created_by=user,
                                       **form.market_settings())  # fmt: skip
            else:
                debate = debate_create(debate=form.instance, created_by=user)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Debate {debate.pk} is waiting for {debate.judge}.")
            return redirect("debate:detail", pk=debate.pk)
    return render(request, "debate/debate_new.html", {"form": form})


@require_GET
@login_required
def debate_detail(request: HttpRequest, pk: int) -> HttpResponse:
    viewer = _viewer_or_404(request, pk)
    context = {"view": debate_view(pk, viewer), **judge_forms()}
    return render(request, "debate/debate.html", context)


@require_POST
@role_required(Role.ANNOTATOR)
def debate_prior(request: HttpRequest, pk: int) -> HttpResponse:
    _judge_or_404(request, pk)
    form = PriorForm(request.POST)
    if form.is_valid():
        try:
            debate_prior_submit(
                debate_id=pk, judge=signed_in_user(request),
                probability_a=form.cleaned_data["probability_a"],
                message=form.cleaned_data["message"],
            )  # fmt: skip
        except ValidationError as error:
            form.add_error(None, error)
    return _panel_response(request, pk, prior_form=form)


@require_POST
@role_required(Role.ANNOTATOR)
def debate_turn(request: HttpRequest, pk: int) -> HttpResponse:
    _judge_or_404(request, pk)
    form = JudgeTurnForm(request.POST)
    if form.is_valid():
        try:
            judge_turn_submit(
                debate_id=pk, judge=signed_in_user(request),
                probability_a=form.cleaned_data["probability_a"],
                action=form.cleaned_data["action"], message=form.cleaned_data["message"],
                rationale=form.cleaned_data["rationale"],
            )  # fmt: skip
        except ValidationError as error:
            form.add_error(None, error)
    return _panel_response(request, pk, turn_form=form)


def _panel_response(request: HttpRequest, pk: int, **forms: object) -> HttpResponse:
    """After a judge's POST: the panel again (with errors, or for the next step)."""
    invalid = any(getattr(form, "errors", None) for form in forms.values())
    if not request.htmx and not invalid:  # type: ignore[attr-defined]
        return redirect("debate:detail", pk=pk)
    context: dict[str, object] = {"view": debate_view(pk, "judge"), **judge_forms()}
    if invalid:
        context.update(forms)
    # htmx: the panel in place, and the transcript, chart and (once judged) passage with it.
    template = "debate/debate.html#judge_response" if request.htmx else "debate/debate.html"  # type: ignore[attr-defined]
    return render(request, template, context, status=200)


@require_POST
@role_required(Role.RESEARCHER)
def speech_retry_view(request: HttpRequest, pk: int, speech_id: int) -> HttpResponse:
    speech = get_object_or_404(Speech, pk=speech_id, debate_id=pk)
    try:
        speech_retry(speech_id=speech.pk)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("debate:detail", pk=pk)


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def prompts_edit(request: HttpRequest, protocol: str) -> HttpResponse:
    if protocol not in Protocol.values:
        raise Http404("No such protocol.")
    prompt = get_object_or_404(ProtocolPrompt, protocol=protocol)
    form = ProtocolPromptForm(request.POST or None, instance=prompt)
    if request.method == "POST" and form.is_valid():
        protocol_prompt_save(prompt=form.instance)
        messages.success(request, f"Saved the {prompt.get_protocol_display()} prompts.")
        return redirect("debate:prompts", protocol=protocol)
    protocols = ProtocolPrompt.objects.order_by("protocol")
    return render(
        request, "debate/prompts.html", {"form": form, "prompt": prompt, "protocols": protocols}
    )
