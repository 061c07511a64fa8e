from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from amplification import services
from amplification.forms import (
    AnswerForm,
    DistillForm,
    ImportForm,
    IterationDistilForm,
    IterationJudgeForm,
    IterationLineForm,
    PairwiseQueueForm,
    QuestionForm,
    SearchForm,
    SubquestionsForm,
    ToQueueForm,
    TreeFilterForm,
    TreeForm,
)
from amplification.models import IterationLine, Node, Tree
from amplification.selectors import (
    distillation_preview,
    distillation_rows,
    node_versions,
    tree_export,
    tree_for_user,
    tree_import_copies,
    tree_outline,
    tree_stats,
    trees_filtered,
)
from core.roles import Role, role_required, signed_in_user, user_has_role


def _tree_or_404(request: HttpRequest, pk: int) -> Tree:
    tree = tree_for_user(request.user, pk)
    if tree is None:
        raise Http404("No such tree.")
    return tree


def _researcher_tree_or_404(request: HttpRequest, pk: int) -> Tree:
    tree = _tree_or_404(request, pk)
    if not user_has_role(request.user, Role.RESEARCHER):
        raise Http404("No such tree.")
    return tree


@require_GET
@role_required(Role.RESEARCHER, Role.ANNOTATOR)
def tree_list(request: HttpRequest) -> HttpResponse:
    """Every tree for researchers; for annotators, the trees they are assigned to."""
    form = TreeFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    user = signed_in_user(request)
    researcher = user_has_role(user, Role.RESEARCHER)
    trees = trees_filtered(
        status=filters.get("status", ""), mode=filters.get("mode", ""),
        query=filters.get("q", ""), assigned_to=None if researcher else user,
    )[:200]  # fmt: skip
    context = {"form": form, "trees": trees, "import_form": ImportForm(),
               "distill_form": DistillForm(), "is_tree_researcher": researcher}  # fmt: skip
    return render(request, "amplification/tree_list.html", context)


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def tree_new(request: HttpRequest) -> HttpResponse:
    form = TreeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tree = services.tree_create(
                tree=form.instance, created_by=signed_in_user(request),
                assignees=list(form.cleaned_data["assignees"]),
            )  # fmt: skip
        except ValidationError as error:
            form.add_error(None, error)
        else:
            # Not "expanding": a flash outlives the run, and the live status line says that.
            messages.success(request, f"Created tree {tree.pk}.")
            return redirect("amplification:detail", pk=tree.pk)
    status = 400 if form.errors else 200
    return render(request, "amplification/tree_new.html", {"form": form}, status=status)


def inspector_context(tree: Tree, *, node_id: int | None, query: str = "") -> dict[str, Any]:
    """Everything the inspector page, its fragments and the websocket render."""
    root, ordered = tree_outline(tree, query=query)
    selected = next((item for item in ordered if item.node.pk == node_id), None)
    return {
        "tree": tree, "root": root, "ordered": ordered,
        "stats": tree_stats(tree, [item.node for item in ordered]),
        "selected": selected, "query": query,
        "match_count": sum(1 for item in ordered if item.match),
        "versions": node_versions(selected.node) if selected else [],
        "import_copies": tree_import_copies(tree),
    }  # fmt: skip


@require_GET
@login_required
def tree_detail(request: HttpRequest, pk: int) -> HttpResponse:
    tree = _tree_or_404(request, pk)
    form = SearchForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    context = inspector_context(tree, node_id=data.get("node"), query=data.get("q") or "")
    context |= _page_forms(request, tree)
    template = "amplification/tree.html"
    if request.htmx and request.GET.get("fragment") == "pane":  # type: ignore[attr-defined]
        template += "#pane"
    return render(request, template, context)


def _page_forms(request: HttpRequest, tree: Tree, **forms: object) -> dict[str, Any]:
    user = signed_in_user(request)
    return {
        "is_tree_researcher": user_has_role(user, Role.RESEARCHER),
        "may_work": services.tree_user_may_work(tree, user),
        "queue_form": ToQueueForm(), "question_form": QuestionForm(),
        "answer_form": AnswerForm(), "child_form": QuestionForm(prefix="child"),
        "subquestions_form": SubquestionsForm(), **forms,
    }  # fmt: skip


def _node_url(tree_id: int, node_id: int | None) -> str:
    url = reverse("amplification:detail", args=[tree_id])
    return f"{url}?node={node_id}" if node_id else url


def _node_action(
    request: HttpRequest, pk: int, node_id: int, *, researcher: bool,
    form_class: type[Any] | None, call: Callable[..., object], form_name: str = "",
    prefix: str | None = None,
) -> HttpResponseBase:  # fmt: skip
    """A POST on one node: check access, validate the form, call one service; then back to the
    node (or the page again with the form's error)."""
    tree = _researcher_tree_or_404(request, pk) if researcher else _tree_or_404(request, pk)
    if not Node.objects.filter(pk=node_id, tree=tree).exists():
        raise Http404("No such node.")
    form = form_class(request.POST, prefix=prefix) if form_class else None
    if form is None or form.is_valid():
        values = form.cleaned_data if form is not None else {}
        try:
            call(tree_id=tree.pk, node_id=node_id, user=signed_in_user(request), **values)
        except ValidationError as error:
            if form is None:
                messages.error(request, " ".join(error.messages))
                return redirect(_node_url(tree.pk, node_id))
            form.add_error(None, error)
        else:
            return redirect(_node_url(tree.pk, node_id))
    context = inspector_context(tree, node_id=node_id)
    context |= _page_forms(request, tree, **{form_name: form})
    return render(request, "amplification/tree.html", context, status=400)


def _action(
    call: Callable[..., object], *, researcher: bool = True,
    form_class: type[Any] | None = None, form_name: str = "", prefix: str | None = None,
) -> Callable[[HttpRequest, int, int], HttpResponseBase]:  # fmt: skip
    @require_POST
    @login_required
    def view(request: HttpRequest, pk: int, node_id: int) -> HttpResponseBase:
        return _node_action(
            request, pk, node_id, researcher=researcher, form_class=form_class, call=call,
            form_name=form_name, prefix=prefix,
        )  # fmt: skip

    return view


def _edit_question(*, question: str, **kwargs: Any) -> object:
    return services.node_edit(question=question, **kwargs)


def _edit_answer(*, answer: str, **kwargs: Any) -> object:
    return services.node_edit(answer=answer, **kwargs)


def _person_answer(*, answer: str, **kwargs: Any) -> object:
    return services.node_answer_by_person(answer=answer, **kwargs)


node_edit_question = _action(_edit_question, form_class=QuestionForm, form_name="question_form")
node_edit_answer = _action(_edit_answer, form_class=AnswerForm, form_name="answer_form")
node_add_child = _action(
    services.node_child_add, form_class=QuestionForm, form_name="child_form", prefix="child"
)
node_remove = _action(services.node_remove)
node_rerun = _action(services.node_rerun)
node_recompute = _action(services.node_recompute)
node_retry = _action(services.node_retry)
node_take = _action(services.node_take, researcher=False)
node_release = _action(services.node_release, researcher=False)
node_answer = _action(
    _person_answer, researcher=False, form_class=AnswerForm, form_name="answer_form"
)
node_decompose = _action(
    services.node_decompose_by_person, researcher=False, form_class=SubquestionsForm,
    form_name="subquestions_form",
)  # fmt: skip


@require_POST
@login_required
def tree_run(request: HttpRequest, pk: int) -> HttpResponse:
    tree = _researcher_tree_or_404(request, pk)
    try:
        waiting = services.tree_run(tree_id=tree.pk)
    except ValidationError as error:
        messages.info(request, " ".join(error.messages))
    else:
        people = f" {waiting} node(s) wait for a person." if waiting else ""
        messages.success(request, f"Tree {tree.pk} resumes.{people}")
    return redirect("amplification:detail", pk=tree.pk)


@require_POST
@login_required
def tree_release_all(request: HttpRequest, pk: int) -> HttpResponse:
    tree = _tree_or_404(request, pk)
    try:
        released = services.tree_release_all(tree_id=tree.pk, user=signed_in_user(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"The model takes over {released} waiting node(s).")
    return redirect("amplification:detail", pk=tree.pk)


@require_POST
@login_required
def tree_to_queue(request: HttpRequest, pk: int) -> HttpResponse:
    tree = _researcher_tree_or_404(request, pk)
    form = ToQueueForm(request.POST)
    if form.is_valid():
        queue = form.cleaned_data["queue"]
        try:
            added = services.tree_nodes_to_queue(
                tree_id=tree.pk, queue=queue, aspect=form.cleaned_data["aspect"]
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Added {added} node(s) to {queue}.")
            if added and not queue.memberships.exists():
                messages.warning(
                    request,
                    f"{queue} has no members: nobody will rate these items until you add "
                    "annotators to it on the queue's manage page.",
                )
    else:
        messages.error(request, "Choose a tree-node rating queue and what to rate.")
    return redirect("amplification:detail", pk=tree.pk)


@require_GET
@login_required
def tree_export_json(request: HttpRequest, pk: int) -> HttpResponse:
    tree = _researcher_tree_or_404(request, pk)
    body = tree_export(tree).model_dump_json(indent=1)
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="tree-{tree.pk}.json"'
    return response


@require_POST
@role_required(Role.RESEARCHER)
def tree_import(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            tree = services.tree_import(
                data=form.cleaned_data["file"], created_by=signed_in_user(request),
                source=form.file_name, again=form.cleaned_data["again"],
            )  # fmt: skip
        except ValidationError as error:
            form.add_error("file", error)
        else:
            copy = f" (copy {tree.import_copy} of this tree)" if tree.import_copy > 1 else ""
            messages.success(request, f"Imported tree {tree.pk}{copy}.")
            return redirect("amplification:detail", pk=tree.pk)
    context = {"form": TreeFilterForm(), "trees": trees_filtered()[:200], "import_form": form,
               "distill_form": DistillForm(), "is_tree_researcher": True}  # fmt: skip
    return render(request, "amplification/tree_list.html", context, status=400)


@require_GET
@role_required(Role.RESEARCHER)
def distillation_export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    form = DistillForm(request.GET)
    if not form.is_valid():
        return HttpResponse(
            json.dumps({"detail": form.errors.as_text()}), status=400,
            content_type="application/json",
        )  # fmt: skip
    rows = distillation_rows(**form.filters())
    response = StreamingHttpResponse(rows, content_type="application/jsonl")
    response["Content-Disposition"] = 'attachment; filename="amplification-distill.jsonl"'
    return response


@require_GET
@role_required(Role.RESEARCHER)
def distillation_preview_page(request: HttpRequest) -> HttpResponse:
    """The row count and the first rows of the set the form describes, before downloading
    it: the form's htmx fragment, or the tree list with it (without JavaScript)."""
    form = DistillForm(request.GET)
    preview = distillation_preview(**form.filters()) if form.is_valid() else None
    context: dict[str, Any] = {"distill_form": form, "preview": preview}
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "amplification/tree_list.html#distill_preview", context,
                      status=200 if preview else 400)  # fmt: skip
    context |= {"form": TreeFilterForm(), "trees": trees_filtered()[:200],
                "import_form": ImportForm(), "is_tree_researcher": True}  # fmt: skip
    return render(request, "amplification/tree_list.html", context, status=200 if preview else 400)


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def distil(request: HttpRequest) -> HttpResponse:
    """ "Distil into a new model": the distillation set's filters, the base and the
    hyperparameters; POST starts the run (amplification.distil) and shows its page."""
    from django.conf import settings

    from amplification.distil import distil_rows, distil_start
    from llm.forms import TrainingStartForm

    data = request.POST if request.method == "POST" else None
    filters = DistillForm(data or request.GET or None, prefix="rows")
    training = TrainingStartForm(data)
    if request.method == "POST" and filters.is_valid() and training.is_valid():
        try:
            run = distil_start(
                base=training.cleaned_data["base"], name=training.cleaned_data["name"],
                hyperparameters=training.hyperparameters(), user=signed_in_user(request),
                **filters.filters(),
            )  # fmt: skip
        except ValidationError as error:
            training.add_error(None, error)
        else:
            messages.success(request, f"Training {run.name} from {run.parent.name}.")
            return redirect("llm:training_run_detail", pk=run.pk)
    status = 400 if request.method == "POST" else 200
    chosen = filters.filters() if filters.is_valid() else {"tree_ids": None, "min_rating": None}
    context = {"filters": filters, "training": training, "minimum": settings.LLM_TRAINING_MIN_ROWS,
               "row_count": len(distil_rows(**chosen))}  # fmt: skip
    return render(request, "amplification/distil.html", context, status=status)


# --- iterated amplification: lines of iterations ------------------------------------------
def _line_or_404(pk: int) -> IterationLine:
    line = IterationLine.objects.select_related("base").filter(pk=pk).first()
    if line is None:
        raise Http404("No such line of iterations.")
    return line


@require_http_methods(["GET", "POST"])
@role_required(Role.RESEARCHER)
def iteration_lines(request: HttpRequest) -> HttpResponse:
    """The lines of iterations, and a form to start one from finished trees."""
    from amplification.iterations import iteration_line_create

    form = IterationLineForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            line = iteration_line_create(
                name=data["name"], base=data["base"], trees=list(data["trees"]),
                held_out=data["held_out"].splitlines(), user=signed_in_user(request),
                max_depth=data["max_depth"], max_children=data["max_children"],
                max_nodes=data["max_nodes"],
            )  # fmt: skip
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Started {line.name} with iteration 1.")
            return redirect("amplification:iteration_line", pk=line.pk)
    lines = IterationLine.objects.select_related("base").prefetch_related("iterations")
    status = 400 if form.errors else 200
    return render(request, "amplification/iterations.html", {"form": form, "lines": lines},
                  status=status)  # fmt: skip


def _line_page(
    request: HttpRequest, line: IterationLine, *, status: int = 200, **forms: object
) -> HttpResponse:
    from amplification.iteration_judge import JUDGE_METHOD
    from amplification.iterations import WIN_METHOD, iteration_line_overview

    iterations = iteration_line_overview(line)
    context = {
        "line": line, "iterations": iterations, "win_method": WIN_METHOD,
        "judge_method": JUDGE_METHOD,
        "busy": any(view.busy for view in iterations),
        "distil_form": IterationDistilForm(initial={"max_steps": 0}),
        "queue_form": PairwiseQueueForm(), "judge_form": IterationJudgeForm(),
        "form_for": None, **forms,
    }  # fmt: skip
    return render(request, "amplification/iteration_line.html", context, status=status)


@require_GET
@role_required(Role.RESEARCHER)
def iteration_line(request: HttpRequest, pk: int) -> HttpResponse:
    """A line's page: each iteration's trees, distilled model, held-out answers side by side
    and win rates, first to last."""
    return _line_page(request, _line_or_404(pk))


def _iteration_action(
    request: HttpRequest, pk: int, number: int, call: Callable[..., str],
    form_class: type[Any] | None = None, form_name: str = "",
) -> HttpResponse:  # fmt: skip
    line = _line_or_404(pk)
    iteration = line.iterations.filter(number=number).first()
    if iteration is None:
        raise Http404("No such iteration.")
    form = form_class(request.POST) if form_class else None
    if form is None or form.is_valid():
        try:
            done = call(iteration, form, signed_in_user(request))
        except ValidationError as error:
            if form is None:
                messages.error(request, " ".join(error.messages))
                return redirect("amplification:iteration_line", pk=line.pk)
            form.add_error(None, error)
        else:
            messages.success(request, done)
            return redirect("amplification:iteration_line", pk=line.pk)
    assert form is not None
    errors = [str(e) for e in form.non_field_errors()] or [
        f"{form.fields[name].label or name}: {' '.join(messages_)}"
        for name, messages_ in form.errors.items()
    ]
    return _line_page(request, line, status=400, form_for=number, form_errors=errors,
                      **{form_name: form})  # fmt: skip


@require_POST
@role_required(Role.RESEARCHER)
def iteration_distil(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    from amplification.iterations import iteration_distil as distil_iteration

    def call(iteration: Any, form: Any, user: Any) -> str:
        run = distil_iteration(iteration_id=iteration.pk, user=user,
                               hyperparameters=form.hyperparameters())  # fmt: skip
        return f"Distilling iteration {iteration.number} into {run.name}."

    return _iteration_action(request, pk, number, call, IterationDistilForm, "distil_form")


@require_POST
@role_required(Role.RESEARCHER)
def iteration_evaluate(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    from amplification.iterations import iteration_evaluate as evaluate

    def call(iteration: Any, form: Any, user: Any) -> str:
        started = evaluate(iteration_id=iteration.pk, user=user)
        return f"Growing {started} held-out answers of iteration {iteration.number}."

    return _iteration_action(request, pk, number, call)


@require_POST
@role_required(Role.RESEARCHER)
def iteration_next(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    from amplification.iterations import iteration_next as start_next

    def call(iteration: Any, form: Any, user: Any) -> str:
        following = start_next(iteration_id=iteration.pk, user=user)
        return (f"Iteration {following.number} grows its trees with {following.helper.name} "
                "as the helper.")  # fmt: skip

    return _iteration_action(request, pk, number, call)


@require_POST
@role_required(Role.RESEARCHER)
def iteration_to_queue(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    from amplification.iterations import iteration_to_queue as to_queue

    def call(iteration: Any, form: Any, user: Any) -> str:
        queue = form.cleaned_data["queue"]
        added = to_queue(iteration_id=iteration.pk, queue=queue)
        return f"Added {added} blind pair(s) to {queue}."

    return _iteration_action(request, pk, number, call, PairwiseQueueForm, "queue_form")


@require_POST
@role_required(Role.RESEARCHER)
def iteration_judge(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """Choose the reward model that judges the iteration's blind pairs, and score them."""
    from amplification.iteration_judge import iteration_judge_start

    def call(iteration: Any, form: Any, user: Any) -> str:
        reward_model = form.cleaned_data["reward_model"]
        version = iteration_judge_start(iteration_id=iteration.pk, reward_model=reward_model)
        return (f"Scoring iteration {iteration.number}'s blind pairs with {reward_model.name} "
                f"v{version.number}.")  # fmt: skip

    return _iteration_action(request, pk, number, call, IterationJudgeForm, "judge_form")
