from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget

from core.roles import Role, role_required, signed_in_user
from llm.charts import loss_chart
from llm.forms import ModelConfigForm, TrialForm
from llm.models import ModelConfig, ModelTrial
from llm.selectors import lineage, model_configs, training_runs
from llm.services import model_config_save, model_trial_start

RECENT_TRIALS = 5


@require_GET
@role_required(Role.RESEARCHER)
def config_list(request: HttpRequest) -> HttpResponse:
    configs = model_configs().select_related("trained_by__parent")
    return render(request, "llm/config_list.html", {"configs": configs})


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def config_create(request: HttpRequest) -> HttpResponse:
    form = ModelConfigForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        config = model_config_save(config=form.instance, user=signed_in_user(request))
        messages.success(request, f"Saved {config.name}.")
        return redirect("llm:config_detail", pk=config.pk)
    return render(request, "llm/config_form.html", {"form": form, "config": None})


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def config_detail(request: HttpRequest, pk: int) -> HttpResponse:
    config = get_object_or_404(ModelConfig, pk=pk)
    form = ModelConfigForm(request.POST or None, instance=config)
    if request.method == "POST" and form.is_valid():
        model_config_save(config=form.instance, user=signed_in_user(request))
        messages.success(request, f"Saved {config.name}.")
        return redirect("llm:config_detail", pk=config.pk)
    trials = ModelTrial.objects.filter(config=config, user=signed_in_user(request))[:RECENT_TRIALS]
    context = {"form": form, "config": config, "trial_form": TrialForm(), "trials": trials,
               "lineage": lineage(config),
               "children": training_runs().filter(parent=config)[:RECENT_TRIALS]}  # fmt: skip
    return render(request, "llm/config_form.html", context)


@require_POST
@role_required(Role.RESEARCHER)
def config_try(request: HttpRequest, pk: int) -> HttpResponse:
    config = get_object_or_404(ModelConfig, pk=pk)
    form = TrialForm(request.POST)
    if not form.is_valid():
        if request.htmx:  # type: ignore[attr-defined]
            context = {"trial_form": form, "config": config}
            response = render(request, "llm/config_form.html#try", context)
            return reswap(retarget(response, "#try-form"), "outerHTML")
        messages.error(request, " ".join(str(error) for error in form.errors.get("prompt", [])))
        return redirect("llm:config_detail", pk=config.pk)
    trial = model_trial_start(
        config=config, user=signed_in_user(request), prompt=form.cleaned_data["prompt"]
    )
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "llm/_trial.html", {"trial": trial})
    return redirect("llm:config_detail", pk=config.pk)


@require_GET
@role_required(Role.RESEARCHER)
def training_run_list(request: HttpRequest) -> HttpResponse:
    return render(request, "llm/training_run_list.html", {"runs": training_runs()[:200]})


@require_GET
@role_required(Role.RESEARCHER)
def training_run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The run's page; htmx polls its `live` fragment while the run is queued or running."""
    run = get_object_or_404(training_runs(), pk=pk)
    curves = run.typed_curves
    chart = loss_chart([(p.step, p.loss) for p in curves.train],
                       [(p.step, p.loss) for p in curves.eval])  # fmt: skip
    context = {"run": run, "chart": chart, "lineage": lineage(run.result) if run.result else [run]}
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "llm/training_run.html#live", context)
    return render(request, "llm/training_run.html", context)
