"""A researcher's read-only preview of a queue's labelling page: what annotators see, item by
item, with nothing claimed and nothing stored (GET only; the keys are not forms)."""

from __future__ import annotations

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from annotations.markdown import markdown_html
from annotations.models import Item, Queue
from core.roles import Role, role_required

MAX_ID = 2**63 - 1


class PreviewForm(forms.Form):
    item = forms.IntegerField(min_value=1, max_value=MAX_ID, required=False)


@require_GET
@role_required(Role.RESEARCHER)
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    queue = get_object_or_404(Queue, pk=pk)
    form = PreviewForm(request.GET)
    if not form.is_valid():
        raise Http404("No such item in this queue.")
    items = Item.objects.filter(queue=queue).order_by("pk")
    wanted = form.cleaned_data["item"]
    item = items.filter(pk=wanted).first() if wanted else items.first()
    if wanted and item is None:
        raise Http404("No such item in this queue.")
    kind = queue.item_kind
    context = {
        "queue": queue,
        "kind": kind,
        "item": item,
        "payload": item.typed_payload(kind) if item else None,
        "previous": items.filter(pk__lt=item.pk).last() if item else None,
        "next": items.filter(pk__gt=item.pk).first() if item else None,
        "position": items.filter(pk__lte=item.pk).count() if item else 0,
        "total": items.count(),
        "instructions": markdown_html(queue.instructions),
    }
    return render(request, "annotations/preview.html", context)
