"""Annotator pages: the queue list and the keyboard labelling page (htmx swaps #work)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from annotations.forms import LabelForm, LeaseForm, RevisitForm
from annotations.markdown import markdown_html
from annotations.models import Assignment, Queue
from annotations.selectors import annotator_progress, queue_for_annotator, queues_for_annotator
from annotations.services import (
    AnnotationError,
    assignment_skip,
    label_submit,
    label_undo,
    queue_item_claim,
)
from core.roles import Role, role_required, signed_in_user

WORK = "annotations/label.html#work"


def _member_queue(request: HttpRequest, pk: int) -> Queue:
    queue = queue_for_annotator(request.user, pk)
    if queue is None:
        raise Http404("No such queue among yours.")
    return queue


def _work(
    request: HttpRequest,
    queue: Queue,
    *,
    lease: Assignment | None = None,
    revisit: bool = False,
    notice: str = "",
    error: str = "",
) -> dict[str, Any]:
    """The work area: the annotator's lease (claimed here unless given) and their progress.
    With `revisit`, their skipped items come back once nothing else is left."""
    user = signed_in_user(request)
    if lease is None:
        lease = queue_item_claim(queue=queue, annotator=user, revisit_skipped=revisit)
    kind = queue.item_kind
    return {
        "queue": queue,
        "kind": kind,
        "lease": lease,
        "revisit": revisit,
        # Only the payload reaches the template: never the item's gold flag or other labels.
        "payload": lease.item.typed_payload(kind) if lease is not None else None,
        "request_id": uuid.uuid4(),
        "progress": annotator_progress(queue, user),
        "notice": notice,
        "error": error,
    }


def _respond(request: HttpRequest, queue: Queue, context: dict[str, Any]) -> HttpResponse:
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, WORK, context)
    for text, level in ((context["notice"], messages.INFO), (context["error"], messages.ERROR)):
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
    context = _work(request, queue, revisit=_revisit(RevisitForm(request.GET)))
    if request.htmx:  # type: ignore[attr-defined]
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
            request, queue, _work(request, queue, revisit=revisit, notice=problem.message)
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
        lease = label_undo(queue=queue, annotator=signed_in_user(request))
    except AnnotationError as problem:
        return _respond(
            request, queue, _work(request, queue, revisit=revisit, notice=problem.message)
        )
    context = _work(request, queue, lease=lease, revisit=revisit, notice="Label undone.")
    return _respond(request, queue, context)
