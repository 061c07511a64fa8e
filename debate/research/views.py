"""Research pages: analytics, imports, exports, question banks, batches. Researchers only."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from core.roles import Role, role_required, signed_in_user
from debate.models import DebateBatch, QuestionBank
from debate.research.analytics import analytics_compute
from debate.research.batches import batch_create
from debate.research.forms import (
    AnalyticsFilterForm,
    BatchForm,
    BatchStartForm,
    DebateImportForm,
    ExportFilterForm,
    QuestionBankImportForm,
    QuestionFilterForm,
)
from debate.research.imports import debate_files_import, question_bank_import
from debate.research.plots import calibration_plot, rating_plot, tournament_plot
from debate.research.records import debates_export_lines
from debate.research.selectors import (
    batch_debates,
    batch_markets,
    debates_for_research_export,
)
from debate.research.tournaments import tournament_compute


@require_GET
@role_required(Role.RESEARCHER)
def analytics(request: HttpRequest) -> HttpResponse:
    form = AnalyticsFilterForm(request.GET or None)
    stats = analytics_compute(form.filters())
    context = {
        "form": form,
        "stats": stats,
        "calibration": calibration_plot(stats.groups),
        "ratings": rating_plot(stats.ratings),
    }
    return render(request, "debate/analytics.html", context)


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def debates_import(request: HttpRequest) -> HttpResponse:
    form = DebateImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        # The uploads themselves: read one at a time by the import, not all held here.
        files = [(f.name or "upload", f) for f in form.cleaned_data["uploads"]]
        report = debate_files_import(files=files)
    return render(request, "debate/import.html", {"form": form, "report": report})


@require_GET
@role_required(Role.RESEARCHER)
def debates_export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    # No query means no filter: every debate (each field's default is "any").
    form = ExportFilterForm(request.GET)
    if not form.is_valid():
        # The export form lives on the import page: show it again, saying what was wrong.
        context = {"form": DebateImportForm(), "export_form": form}
        return render(request, "debate/import.html", context, status=400)
    debates = debates_for_research_export(
        source=form.cleaned_data["source"], protocol=form.cleaned_data["protocol"],
        batch=form.cleaned_data["batch"],
    )  # fmt: skip
    response = StreamingHttpResponse(
        debates_export_lines(debates), content_type="application/x-ndjson; charset=utf-8"
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="debates-{stamp}.jsonl"'
    return response


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def banks(request: HttpRequest) -> HttpResponse:
    form = QuestionBankImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        bank, report = question_bank_import(
            name=form.cleaned_data["name"], raw=form.cleaned_data["file"],
            created_by=signed_in_user(request),
        )  # fmt: skip
        if bank is not None and not report.errors:
            count = len(report.imported)
            messages.success(request, f"Imported {count} question{pluralize(count)} into {bank}.")
            return redirect("debate:bank", pk=bank.pk)
    all_banks = QuestionBank.objects.order_by("name")
    context = {"form": form, "report": report, "banks": all_banks}
    return render(request, "debate/banks.html", context)


@require_GET
@role_required(Role.RESEARCHER)
def bank_detail(request: HttpRequest, pk: int) -> HttpResponse:
    bank = get_object_or_404(QuestionBank, pk=pk)
    form = QuestionFilterForm(request.GET or None)
    questions = bank.questions.order_by("line")
    if form.is_valid() and form.cleaned_data["q"]:
        questions = questions.filter(question__icontains=form.cleaned_data["q"])
    page = Paginator(questions, 50).get_page(request.GET.get("page"))
    return render(request, "debate/bank.html", {"bank": bank, "form": form, "page": page})


@require_GET
@role_required(Role.RESEARCHER)
def batches(request: HttpRequest) -> HttpResponse:
    rows = DebateBatch.objects.select_related("bank", "llm_judge_config")[:200]
    return render(request, "debate/batches.html", {"batches": rows})


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def batch_new(request: HttpRequest) -> HttpResponse:
    start = BatchStartForm(request.GET)
    initial = {"bank": start.cleaned_data["bank"]} if start.is_valid() else {}
    form = BatchForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            batch = batch_create(
                name=form.cleaned_data["name"], bank=form.cleaned_data["bank"],
                spec=form.spec(), created_by=signed_in_user(request),
                llm_judge_config=form.cleaned_data["llm_judge_config"],
                judge_prompt=form.cleaned_data["judge_prompt"],
            )  # fmt: skip
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("debate:batch", pk=batch.pk)
    return render(request, "debate/batch_new.html", {"form": form})


@require_GET
@role_required(Role.RESEARCHER)
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(DebateBatch.objects.select_related("bank", "llm_judge_config"), pk=pk)
    tournament = tournament_compute(batch) if batch.finished else None
    context = {
        "batch": batch, "debates": batch_debates(batch), "tournament": tournament,
        "plot": tournament_plot(tournament) if tournament else None,
        "markets": batch_markets(batch),
    }  # fmt: skip
    template = "debate/batch.html#progress" if request.htmx else "debate/batch.html"  # type: ignore[attr-defined]
    return render(request, template, context)
