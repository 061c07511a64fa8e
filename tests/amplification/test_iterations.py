"""Iterations: finished trees → a distilled model → held-out answers three ways → blind pairs
and win rates → iteration k+1 grown with the distilled model. The scripted backend grows the
trees; the worker and the browser walk-through (test_iterations_browser.py) use the model."""

from __future__ import annotations

import uuid
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from amplification.expansion import tree_expand
from amplification.iterations import (
    iteration_distil,
    iteration_evaluate,
    iteration_line_create,
    iteration_line_overview,
    iteration_next,
    iteration_to_queue,
    win_rates,
)
from amplification.models import Iteration, IterationLine, IterationPair, Tree, TreeStatus
from annotations.models import Item, Label, Queue
from llm.models import TrainingRun, TrainingStatus
from tests.factories import ModelConfigFactory
from tests.helpers import signed_in
from tests.llm.training_data import bundled_config, openai_config, tiny_hyperparameters

pytestmark = pytest.mark.django_db

HELD_OUT = ["Why do rivers flood in spring?", "How do bees make honey?"]


@pytest.fixture(autouse=True)
def no_worker() -> Any:
    with mock.patch("llm.tasks.training_run_task.delay") as enqueue:
        yield enqueue


@pytest.fixture
def trees(fake: Any, make_tree: Any) -> list[Tree]:
    fake.decompositions = {
        "Why do cats purr?": "1. What makes a cat purr?\n2. When do cats purr?",
        "Why do volcanoes erupt?": "1. What is magma?\n2. Why does magma rise?",
    }
    made = [make_tree("Why do cats purr?"), make_tree("Why do volcanoes erupt?")]
    assert all(tree.status == TreeStatus.DONE for tree in made)
    return made


@pytest.fixture
def line(trees: list[Tree], researcher: Any) -> IterationLine:
    return iteration_line_create(
        name="cats and volcanoes", base=bundled_config(), trees=trees,
        held_out=[*HELD_OUT, "", HELD_OUT[0]], user=researcher,
    )  # fmt: skip


def distilled(iteration: Iteration, researcher: Any, settings: Any) -> Any:
    """Distil through the service; the worker's part (a DONE run with its config) is written
    as llm.training leaves it, since llm's own tests run the real trainer."""
    settings.LLM_TRAINING_MIN_ROWS = 2
    run = iteration_distil(iteration_id=iteration.pk, hyperparameters=tiny_hyperparameters(),
                           user=researcher)  # fmt: skip
    result = ModelConfigFactory(name=run.name)
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.DONE, result=result)
    return result


def grow_all() -> None:
    for tree in Tree.objects.filter(status=TreeStatus.QUEUED):
        tree_expand(tree_id=tree.pk)


def test_a_line_starts_with_its_finished_trees_as_iteration_1(line, trees):
    first = line.iterations.get()
    assert first.number == 1 and first.helper == line.base
    assert set(first.trees.values_list("pk", flat=True)) == {t.pk for t in trees}
    assert line.held_out == HELD_OUT  # blank lines and repeats dropped


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"held_out": ["why do CATS purr"]}, "also training questions"),
        ({"held_out": ["", " "]}, "at least one held-out question"),
        ({"base": "server"}, "not a local model"),
        ({"trees": []}, "Choose the finished trees"),
    ],
)
def test_bad_lines_are_refused_and_nothing_is_made(trees, researcher, change, message):
    values: dict[str, Any] = {"name": "bad", "base": bundled_config(), "trees": trees,
                              "held_out": HELD_OUT, "user": researcher, **change}  # fmt: skip
    if values["base"] == "server":
        values["base"] = openai_config()
    with pytest.raises(ValidationError, match=message):
        iteration_line_create(**values)
    assert not IterationLine.objects.exists() and not Iteration.objects.exists()
    assert not Tree.objects.filter(iteration__isnull=False).exists()


def test_an_unfinished_tree_or_one_in_another_line_is_refused(make_tree, trees, line, researcher):
    growing = make_tree("Why is the sky blue?", expand=False)
    for chosen, message in (([growing], "not finished"), (trees, "already in a line")):
        with pytest.raises(ValidationError, match=message):
            iteration_line_create(name="again", base=line.base, trees=chosen, held_out=HELD_OUT,
                                  user=researcher)  # fmt: skip
    assert IterationLine.objects.count() == 1


def test_distilling_trains_the_helper_on_the_iterations_trees_once(line, researcher, settings):
    first = line.iterations.get()
    result = distilled(first, researcher, settings)
    run = TrainingRun.objects.get()
    assert run.parent == line.base and run.result == result
    assert run.source.startswith("amplification distillation set: trees ")
    # Two trees of three nodes each: every node once.
    assert run.row_count == 6
    with pytest.raises(ValidationError, match="already distilled"):
        iteration_distil(iteration_id=first.pk, hyperparameters=tiny_hyperparameters(),
                         user=researcher)  # fmt: skip
    assert TrainingRun.objects.count() == 1


def test_held_out_answers_three_ways_then_blind_pairs(fake, line, researcher, settings):
    first = line.iterations.get()
    with pytest.raises(ValidationError, match="no distilled model yet"):
        iteration_evaluate(iteration_id=first.pk, user=researcher)
    model = distilled(first, researcher, settings)
    fake.decompositions = dict.fromkeys(HELD_OUT, "1. What comes first?\n2. What comes next?")
    assert iteration_evaluate(iteration_id=first.pk, user=researcher) == 6
    held = first.trees.exclude(iteration_role="train")
    assert {(t.question, t.iteration_role, t.answer_config.name, t.max_depth) for t in held} == {
        (q, role, config.name, depth) for q in HELD_OUT
        for role, config, depth in (("direct", line.base, 0), ("amplified", line.base, 1),
                                    ("distilled", model, 0))
    }  # fmt: skip
    queue = Queue.objects.create(name="iteration pairs", kind="pairwise")
    with pytest.raises(ValidationError, match="still have answers growing"):
        iteration_to_queue(iteration_id=first.pk, queue=queue)
    grow_all()
    assert iteration_to_queue(iteration_id=first.pk, queue=queue) == 6
    assert iteration_to_queue(iteration_id=first.pk, queue=queue) == 0  # each pair once
    for pair in IterationPair.objects.select_related("item"):
        shown = pair.item.payload
        assert shown["prompt"] == pair.question
        # The item shows two answers, never which is which.
        assert set(shown) == {"prompt", "response_a", "response_b", "system"}
        roles = {"direct": f"answer to {pair.question}", "distilled": f"answer to {pair.question}",
                 "amplified": f"composed: {pair.question}"}  # fmt: skip
        assert shown["response_a"] == roles[pair.a_role]
    tree_queue = Queue.objects.create(name="nodes", kind="tree_node_rating")
    with pytest.raises(ValidationError, match="pairwise queue"):
        iteration_to_queue(iteration_id=first.pk, queue=tree_queue)


def test_win_rates_follow_the_roles_not_the_sides(fake, line, researcher, settings, annotator,
                                                  annotator2):  # fmt: skip
    first = line.iterations.get()
    distilled(first, researcher, settings)
    iteration_evaluate(iteration_id=first.pk, user=researcher)
    grow_all()
    queue = Queue.objects.create(name="iteration pairs", kind="pairwise")
    iteration_to_queue(iteration_id=first.pk, queue=queue)
    # Both people prefer the amplified answer wherever it is; distilled vs direct: a tie on
    # one question, split votes on the other.
    for pair in IterationPair.objects.all():
        first_side = "a" if pair.a_role == pair.comparison.split("-")[0] else "b"
        second_side = "b" if first_side == "a" else "a"
        if pair.comparison == "amplified-direct":
            votes = [first_side, first_side]
        elif pair.comparison == "distilled-amplified":
            votes = [second_side, second_side]
        elif pair.question == HELD_OUT[0]:
            votes = ["tie", "tie"]
        else:
            votes = [first_side, second_side]
        for person, vote in zip((annotator, annotator2), votes, strict=True):
            Label.objects.create(
                queue=queue, item=pair.item, annotator=person, value={"choice": vote},
                client_request_id=uuid.uuid4(),
            )  # fmt: skip
    rates = {w.comparison: w for w in win_rates(first)}
    assert (rates["amplified-direct"].share.k, rates["amplified-direct"].share.n) == (2, 2)
    assert (rates["distilled-amplified"].share.k, rates["distilled-amplified"].share.n) == (0, 2)
    assert rates["distilled-direct"].share.n == 0 and rates["distilled-direct"].ties == 2
    assert rates["amplified-direct"].share.interval_text == "34–100 %"
    assert Item.objects.filter(queue=queue).count() == 6


def test_the_next_iteration_grows_its_trees_with_the_distilled_model(
    fake, line, trees, researcher, settings
):
    first = line.iterations.get()
    with pytest.raises(ValidationError, match="no distilled model yet"):
        iteration_next(iteration_id=first.pk, user=researcher)
    model = distilled(first, researcher, settings)
    second = iteration_next(iteration_id=first.pk, user=researcher)
    assert second.number == 2 and second.helper == model
    grown = list(second.trees.all())
    assert sorted(t.question for t in grown) == sorted(t.question for t in trees)
    assert all(t.decompose_config == t.answer_config == t.compose_config == model for t in grown)
    assert all(t.iteration_role == "train" and t.max_depth == line.max_depth for t in grown)
    with pytest.raises(ValidationError, match="Iteration 2 already exists"):
        iteration_next(iteration_id=first.pk, user=researcher)
    assert line.iterations.count() == 2
    grow_all()
    views = iteration_line_overview(line)
    assert [v.iteration.number for v in views] == [1, 2]
    assert views[1].trees_done == 2 and not views[1].busy


# --- the page -----------------------------------------------------------------------------
def test_the_page_shows_each_step_and_refuses_others(line, researcher, annotator, settings):
    url = reverse("amplification:iteration_line", args=[line.pk])
    body = signed_in(researcher).get(url).content.decode()
    assert "Iteration 1" in body and "Distil iteration 1" in body
    assert signed_in(annotator).get(url).status_code in (403, 404)
    assert signed_in(researcher).post(url).status_code == 405
    missing = reverse("amplification:iteration_line", args=[line.pk + 1])
    assert signed_in(researcher).get(missing).status_code == 404


def test_distilling_from_the_page_and_a_bad_value_refused(line, researcher, settings):
    settings.LLM_TRAINING_MIN_ROWS = 2
    url = reverse("amplification:iteration_distil", args=[line.pk, 1])
    fields = {"learning_rate": "0.0003", "epochs": "1", "max_steps": "2", "batch_size": "4",
              "max_length": "64"}  # fmt: skip
    bad = signed_in(researcher).post(url, {**fields, "batch_size": "0"})
    assert bad.status_code == 400 and not TrainingRun.objects.exists()
    response = signed_in(researcher).post(url, fields)
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert run.typed_hyperparameters.max_steps == 2 and run.name.endswith("iteration 1")
    again = signed_in(researcher).post(url, fields, follow=True)
    assert "already distilled" in again.content.decode()


def test_a_line_is_started_from_the_form(trees, researcher):
    url = reverse("amplification:iterations")
    fields = {"name": "from the form", "base": bundled_config().pk,
              "trees": [t.pk for t in trees], "held_out": "\n".join(HELD_OUT),
              "max_depth": "1", "max_children": "2", "max_nodes": "5"}  # fmt: skip
    overlapping = signed_in(researcher).post(url, {**fields, "held_out": trees[0].question})
    assert (
        overlapping.status_code == 400 and "also training questions" in overlapping.content.decode()
    )
    assert not IterationLine.objects.exists()
    response = signed_in(researcher).post(url, fields)
    line = IterationLine.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{line.pk}/")
    assert line.max_children == 2 and line.held_out == HELD_OUT


def test_held_out_answers_never_enter_a_distillation_set(fake, line, researcher, settings):
    from amplification.selectors import distillation_set

    first = line.iterations.get()
    distilled(first, researcher, settings)
    iteration_evaluate(iteration_id=first.pk, user=researcher)
    grow_all()
    held = list(first.trees.exclude(iteration_role="train").values_list("pk", flat=True))
    assert len(held) == 6
    for tree_ids in (None, held):
        rows = distillation_set(tree_ids=tree_ids)
        asked = {row.prompt.rsplit("Question: ", 1)[1] for row in rows}
        assert not asked & set(HELD_OUT), tree_ids
