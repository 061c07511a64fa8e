"""Researcher pages: reward models, their versions, Retrain now, roll back, checkpoints;
best-of-n over-optimisation experiments."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.roles import Role, role_required, signed_in_user
from llm.selectors import training_runs
from rewards.best_of_n import (
    ExperimentInvalid,
    best_of_n_start,
    experiment_analysis,
    experiment_export_rows,
)
from rewards.forms import (
    BestOfNForm,
    PolicyEvalForm,
    PolicyRunForm,
    RetrainForm,
    RewardModelForm,
)
from rewards.human_gold import human_gold_export_rows
from rewards.models import BestOfNExperiment, HumanGold, PolicyEval, RewardModel, RewardVersion
from rewards.policy import policy_eval_result, policy_eval_start, policy_run_start
from rewards.selectors import (
    best_of_n_chart_for,
    best_of_n_experiments,
    can_roll_back,
    human_gold_for,
    label_source_siblings,
    reward_model_charts,
    reward_model_versions,
    reward_models,
)
from rewards.services import (
    RewardError,
    checkpoint_archive,
    readiness_text,
    reward_model_readiness,
    reward_model_save,
    reward_retrain_now,
    reward_version_rollback,
)


@require_GET
@role_required(Role.RESEARCHER)
def model_list(request: HttpRequest) -> HttpResponse:
    rows = [
        (rm, None if rm.active_version else reward_model_readiness(reward_model=rm))
        for rm in reward_models()
    ]
    return render(request, "rewards/list.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def model_create(request: HttpRequest) -> HttpResponse:
    form = RewardModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        reward_model = reward_model_save(
            reward_model=form.instance, queues=form.cleaned_data["queues"],
            user=signed_in_user(request),
        )  # fmt: skip
        messages.success(request, f"Created {reward_model.name}.")
        return redirect("rewards:detail", pk=reward_model.pk)
    return render(request, "rewards/form.html", {"form": form, "reward_model": None})


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def model_edit(request: HttpRequest, pk: int) -> HttpResponse:
    reward_model = get_object_or_404(RewardModel, pk=pk)
    form = RewardModelForm(request.POST or None, instance=reward_model)
    if request.method == "POST" and form.is_valid():
        reward_model_save(reward_model=form.instance, queues=form.cleaned_data["queues"],
                          user=signed_in_user(request))  # fmt: skip
        messages.success(request, "Saved.")
        return redirect("rewards:detail", pk=pk)
    return render(request, "rewards/form.html", {"form": form, "reward_model": reward_model})


@require_GET
@role_required(Role.RESEARCHER)
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    reward_model = get_object_or_404(reward_models(), pk=pk)
    versions = list(reward_model_versions(reward_model))
    running = next((v for v in versions if v.running), None)
    readiness = reward_model_readiness(reward_model=reward_model)
    context = {
        "reward_model": reward_model,
        "readiness": readiness,
        "readiness_text": readiness_text(readiness),
        "versions": [(v, can_roll_back(v)) for v in versions],
        "running": running,
        "charts": reward_model_charts(reward_model, versions),
        "retrain_form": RetrainForm(),
        "siblings": label_source_siblings(reward_model),
    }
    return render(request, "rewards/detail.html", context)


@require_POST
@role_required(Role.RESEARCHER)
def retrain(request: HttpRequest, pk: int) -> HttpResponse:
    reward_model = get_object_or_404(RewardModel, pk=pk)
    form = RetrainForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose fast or full training.")
    else:
        try:
            version = reward_retrain_now(reward_model=reward_model, user=signed_in_user(request),
                                         speed=form.cleaned_data["speed"])  # fmt: skip
            messages.success(request, f"Version {version.number} queued for training.")
        except RewardError as error:
            messages.error(request, error.message)
    return redirect("rewards:detail", pk=pk)


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def rollback(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """GET: the confirmation (what goes live, what retires); POST: roll back."""
    version = get_object_or_404(
        RewardVersion.objects.select_related("reward_model__active_version"),
        reward_model_id=pk, number=number,
    )  # fmt: skip
    if request.method == "GET":
        context = {"version": version, "reward_model": version.reward_model,
                   "active": version.reward_model.active_version,
                   "rollable": can_roll_back(version)}  # fmt: skip
        return render(request, "rewards/rollback.html", context)
    try:
        reward_version_rollback(version=version, user=signed_in_user(request))
        messages.success(request, f"Version {number} is active again.")
    except RewardError as error:
        messages.error(request, error.message)
    return redirect("rewards:detail", pk=pk)


@require_GET
@role_required(Role.RESEARCHER)
def checkpoint(request: HttpRequest, pk: int, number: int) -> FileResponse:
    version = get_object_or_404(RewardVersion, reward_model_id=pk, number=number)
    try:
        path = checkpoint_archive(version=version)
    except RewardError as error:
        raise Http404(error.message) from None
    name = f"reward-model-{pk}-v{number}.zip"
    return FileResponse(path.open("rb"), as_attachment=True, filename=name)


# --- best-of-n over-optimisation experiments ------------------------------------------------
@require_GET
@role_required(Role.RESEARCHER)
def experiment_list(request: HttpRequest) -> HttpResponse:
    return render(request, "rewards/experiments.html",
                  {"experiments": best_of_n_experiments()[:100]})  # fmt: skip


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def experiment_create(request: HttpRequest) -> HttpResponse:
    form = BestOfNForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            experiment = best_of_n_start(
                name=data["name"], policy=data["policy"], prompts=data["prompts"],
                prompt_source=data["prompt_source"], samples_per_prompt=data["samples_per_prompt"],
                temperature=data["temperature"], seed=data["seed"],
                max_new_tokens=data["max_new_tokens"], proxies=list(data["proxies"]),
                gold=data["gold"], human_prompts=data["human_prompts"],
                user=signed_in_user(request),
            )  # fmt: skip
        except ExperimentInvalid as error:
            form.add_error(None, error.message)
        else:
            return redirect("rewards:experiment", pk=experiment.pk)
    status = 400 if form.is_bound else 200
    return render(request, "rewards/experiment_form.html", {"form": form}, status=status)


@require_GET
@role_required(Role.RESEARCHER)
def experiment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = get_object_or_404(best_of_n_experiments(), pk=pk)
    records = experiment_analysis(experiment)
    context = {
        "experiment": experiment,
        "proxies": experiment.proxies.select_related("reward_model"),
        "records": records,
        "chart": best_of_n_chart_for(records),
        "human": human_gold_for(experiment),
    }
    if request.htmx:  # type: ignore[attr-defined]
        response = render(request, "rewards/experiment.html#progress", context)
        if not experiment.running:
            response["HX-Refresh"] = "true"  # finished: load the page with its plot
        return response
    return render(request, "rewards/experiment.html", context)


@require_GET
@role_required(Role.RESEARCHER)
def experiment_export(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    experiment = get_object_or_404(BestOfNExperiment, pk=pk)
    return _csv_response(experiment_export_rows(experiment), f"best-of-n-{pk}.csv")


@require_GET
@role_required(Role.RESEARCHER)
def experiment_human_export(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The human gold's labels with what the judges never saw (which n, which side)."""
    human = get_object_or_404(HumanGold, experiment_id=pk)
    return _csv_response(human_gold_export_rows(human), f"best-of-n-{pk}-human-gold.csv")


def _csv_response(rows: Iterator[list[Any]], filename: str) -> StreamingHttpResponse:
    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def policy_run_create(request: HttpRequest) -> HttpResponse:
    """Start a DPO or rejection-sampling run; the run's page (llm) shows its live loss."""
    form = PolicyRunForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = policy_run_start(
                kind=data["kind"], parent=data["parent"], name=data["name"],
                queue=data["queue"], reward_model=data["reward_model"],
                gold_model=data["gold_model"], settings=form.policy_settings(),
                user=signed_in_user(request),
            )  # fmt: skip
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            messages.success(request, f"Queued {run.get_kind_display()}: {run.name}.")
            return redirect("llm:training_run_detail", pk=run.pk)
    status = 400 if form.is_bound else 200
    return render(request, "rewards/policy_run_form.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def policy_eval(request: HttpRequest, run_pk: int) -> HttpResponse:
    """A finished policy run's blind pairwise evaluation: its win rate once it exists, else
    the form that creates its queue."""
    run = get_object_or_404(training_runs().select_related("parent"), pk=run_pk)
    evaluation = PolicyEval.objects.select_related("queue").filter(run=run).first()
    posted = request.POST if request.method == "POST" else None
    form = PolicyEvalForm(posted) if evaluation is None else None
    if request.method == "POST":
        if form is None:
            messages.error(request, "This run has a blind evaluation already.")
            return redirect("rewards:policy_eval", run_pk=run.pk)
        if form.is_valid():
            try:
                policy_eval_start(run=run, members=list(form.cleaned_data["members"]),
                                  user=signed_in_user(request))  # fmt: skip
            except ValidationError as error:
                form.add_error(None, error.messages)
            else:
                return redirect("rewards:policy_eval", run_pk=run.pk)
    context = {"run": run, "evaluation": evaluation, "form": form,
               "result": policy_eval_result(evaluation) if evaluation else None}  # fmt: skip
    status = 400 if form is not None and form.is_bound else 200
    return render(request, "rewards/policy_eval.html", context, status=status)
