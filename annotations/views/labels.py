"""Annotator pages: the queue list and the keyboard labelling page (htmx swaps #work)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from annotations.forms import LabelForm, LeaseForm, RevisitForm
from annotations.kinds import ItemKind, Payload
from annotations.markdown import markdown_html
from annotations.models import Assignment, Queue
from annotations.selectors import annotator_progress, queue_for_annotator, queues_for_annotator
from annotations.services import (
    AnnotationError,
    assignment_release,
    assignment_skip,
    label_submit,
    label_undo,
    queue_item_prefetch,
)
from core.roles import Role, role_required, signed_in_user

WORK = "annotations/label.html#work"


def _member_queue(request: HttpRequest, pk: int) -> Queue:
    queue = queue_for_annotator(request.user, pk)
    if queue is None:
        raise Http404("No such queue among yours.")
    return queue


@dataclass(frozen=True)
class HeldItem:
    """A lease as the page shows it: its item's payload (never its gold flag or other labels)
    and a request id for the one label it may carry."""

    lease: Assignment
    payload: Payload
    request_id: uuid.UUID


def _held_item(lease: Assignment | None, kind: ItemKind) -> HeldItem | None:
    if lease is None:
        return None
    return HeldItem(lease=lease, payload=lease.item.typed_payload(kind), request_id=uuid.uuid4())


def _work(
    request: HttpRequest,
    queue: Queue,
    *,
    revisit: bool = False,
    renew_ahead: bool = False,
    notice: str = "",
    error: str = "",
    refused: str = "",
) -> dict[str, Any]:
    """The work area: the annotator's current item and the next one held ahead (claimed here,
    see queue_item_prefetch), and their progress. With `revisit`, their skipped items come back
    once nothing else is left. `refused`: why the label just sent was not stored."""
    user = signed_in_user(request)
    held = queue_item_prefetch(
        queue=queue, annotator=user, revisit_skipped=revisit, renew_ahead=renew_ahead
    )
    kind = queue.item_kind
    return {
        "queue": queue,
        "kind": kind,
        "current": _held_item(held.current, kind),
        "ahead": _held_item(held.ahead, kind),
        "revisit": revisit,
        "progress": annotator_progress(queue, user),
        "notice": notice,
        "error": error,
        "refused": refused,
    }


def _respond(request: HttpRequest, queue: Queue, context: dict[str, Any]) -> HttpResponse:
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, WORK, context)
    shown = (
        (context["notice"], messages.INFO),
        (context["error"], messages.ERROR),
        (f"Not stored: {context['refused']}" if context["refused"] else "", messages.ERROR),
    )
    for text, level in shown:
        if text:
            messages.add_message(request, level, text)
    page = reverse("annotations:label", args=[queue.pk])
    return redirect(page + "?revisit=1" if context["revisit"] else page)


def _revisit(form: RevisitForm) -> bool:
    return bool(form.is_valid() and form.cleaned_data["revisit"])


@require_GET
@role_required(Role.ANNOTATOR)
def my_queues(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    rows = [(queue, annotator_progress(queue, user)) for queue in queues_for_annotator(user)]
    return render(request, "annotations/my_queues.html", {"rows": rows})


@never_cache
@require_GET
@role_required(Role.ANNOTATOR)
def label(request: HttpRequest, pk: int) -> HttpResponse:
    queue = _member_queue(request, pk)
    fresh_page = not request.htmx  # type: ignore[attr-defined]
    revisit = _revisit(RevisitForm(request.GET))
    context = _work(request, queue, revisit=revisit, renew_ahead=fresh_page)
    if not fresh_page:
        return render(request, WORK, context)  # "Revisit skipped" swaps the work area only
    context["instructions"] = markdown_html(queue.instructions)
    return render(request, "annotations/label.html", context)


@never_cache
@require_POST
@role_required(Role.ANNOTATOR)
def label_submit_view(request: HttpRequest, pk: int) -> HttpResponse:
    queue = _member_queue(request, pk)
    user = signed_in_user(request)
    form = LabelForm(request.POST, kind=queue.item_kind)
    revisit = _revisit(form)
    if not form.is_valid():
        problems = " ".join(str(error) for errors in form.errors.values() for error in errors)
        return _respond(request, queue, _work(request, queue, revisit=revisit, error=problems))
    try:
        label_submit(
            assignment_id=form.cleaned_data["assignment"],
            annotator=user,
            value=form.value(),
            # None without the page's script: the time is unknown (the lease's age is not it).
            time_spent_ms=form.cleaned_data["time_ms"],
            client_request_id=form.cleaned_data["request_id"],
            queue_id=queue.pk,
        )
    except AnnotationError as problem:
        return _respond(
            request, queue, _work(request, queue, revisit=revisit, refused=problem.message)
        )
    except ValidationError as problem:
        error = " ".join(problem.messages)
        return _respond(request, queue, _work(request, queue, revisit=revisit, error=error))
    return _respond(request, queue, _work(request, queue, revisit=revisit))


@never_cache
@require_POST
@role_required(Role.ANNOTATOR)
def skip(request: HttpRequest, pk: int) -> HttpResponse:
    queue = _member_queue(request, pk)
    form = LeaseForm(request.POST)
    if not form.is_valid():
        return _respond(request, queue, _work(request, queue, error="Nothing to skip."))
    try:
        assignment_skip(
            assignment_id=form.cleaned_data["assignment"], annotator=signed_in_user(request)
        )
    except AnnotationError as problem:
        return _respond(request, queue, _work(request, queue, notice=problem.message))
    # Back to the items not skipped (a skip while revisiting too): an item skipped again is
    # offered again only when asked, never straight back.
    return _respond(request, queue, _work(request, queue, notice="Skipped."))


@never_cache
@require_POST
@role_required(Role.ANNOTATOR)
def undo(request: HttpRequest, pk: int) -> HttpResponse:
    queue = _member_queue(request, pk)
    revisit = _revisit(RevisitForm(request.POST))
    try:
        label_undo(queue=queue, annotator=signed_in_user(request))
    except AnnotationError as problem:
        return _respond(
            request, queue, _work(request, queue, revisit=revisit, notice=problem.message)
        )
    # The undone item is their current lease now; the one held ahead is claimed anew.
    return _respond(request, queue, _work(request, queue, revisit=revisit, notice="Label undone."))


@never_cache
@require_POST
@role_required(Role.ANNOTATOR)
def release(request: HttpRequest, pk: int) -> HttpResponse:
    """The labelling page goes away (navigator.sendBeacon on pagehide): give back the item it
    held ahead, unseen. 204 when released; 409 when that lease is no longer held ahead."""
    queue = _member_queue(request, pk)
    form = LeaseForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Which lease? " + form.errors.as_text(), status=400)
    try:
        assignment_release(
            assignment_id=form.cleaned_data["assignment"],
            annotator=signed_in_user(request),
            queue_id=queue.pk,
        )
    except AnnotationError as problem:
        return HttpResponse(problem.message, status=problem.status)
    return HttpResponse(status=204)
