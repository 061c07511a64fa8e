"""Distil into a new model: the distillation set's rows go to llm's training run, with the
page's filters; too few rows or a server model start nothing."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from amplification.distil import distil_rows, distil_start
from amplification.selectors import distillation_rows
from llm.models import TrainingRun
from llm.services import training_rows_hash
from tests.amplification.conftest import three_by_three
from tests.helpers import signed_in
from tests.llm.training_data import bundled_config, openai_config, tiny_hyperparameters

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_worker() -> Any:
    with mock.patch("llm.tasks.training_run_task.delay") as enqueue:
        yield enqueue


@pytest.fixture
def finished_tree(fake: Any, make_tree: Any) -> Any:
    fake.decompositions = three_by_three()
    tree = make_tree()
    assert tree.status == "done"
    return tree


def test_the_rows_are_the_distillation_sets(finished_tree):
    rows = distil_rows(tree_ids=None, min_rating=None)
    assert len(rows) == len(list(distillation_rows(tree_ids=None, min_rating=None))) == 13
    # Each prompt is the answerer's whole prompt (amplification.prompts.answer_prompt).
    expected = {
        json.loads(line)["prompt"] for line in distillation_rows(tree_ids=None, min_rating=None)
    }
    assert {row.prompt for row in rows} == expected
    assert all(
        any(row.prompt.endswith(f"Question: {q}") for row in rows) for q in ("Root?", "A?", "C3?")
    )


def test_distil_starts_an_sft_run_of_the_base_on_them(finished_tree, researcher, settings):
    settings.LLM_TRAINING_MIN_ROWS = 10
    base = bundled_config()
    run = distil_start(base=base, name="iteration 1", hyperparameters=tiny_hyperparameters(),
                       user=researcher)  # fmt: skip
    assert run.parent == base and run.kind == "sft-distil" and run.row_count == 13
    assert run.source == "amplification distillation set: every finished tree"
    assert run.dataset_hash == training_rows_hash(run.typed_rows)


@pytest.mark.parametrize("server", [False, True])
def test_too_few_rows_or_a_server_base_start_nothing(finished_tree, researcher, server):
    base = openai_config() if server else bundled_config()
    message = "local transformers model" if server else "has 13 rows; .* at least 20"
    with pytest.raises(ValidationError, match=message):
        distil_start(base=base, name="x", hyperparameters=tiny_hyperparameters(), user=researcher)
    assert not TrainingRun.objects.exists()


def test_the_page_starts_a_run_and_shows_its_page(finished_tree, researcher, settings):
    settings.LLM_TRAINING_MIN_ROWS = 10
    base = bundled_config()
    client = signed_in(researcher)
    page = client.get(reverse("amplification:distil"))
    assert page.status_code == 200 and b"<strong>13</strong> rows" in page.content
    response = client.post(reverse("amplification:distil"), {
        "base": base.pk, "name": "iteration 1", "learning_rate": "0.0003", "epochs": "1",
        "max_steps": "2", "batch_size": "8", "max_length": "64", "rows-min_rating": "",
    })  # fmt: skip
    run = TrainingRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("llm:training_run_detail", kwargs={"pk": run.pk})
    assert run.typed_hyperparameters.max_steps == 2 and run.created_by == researcher


def test_the_page_shows_why_nothing_started(finished_tree, researcher, annotator):
    base = bundled_config()
    form = {"base": base.pk, "name": "iteration 1", "learning_rate": "0.0003", "epochs": "1",
            "batch_size": "8", "max_length": "64"}  # fmt: skip
    response = signed_in(researcher).post(reverse("amplification:distil"), form)
    assert response.status_code == 400
    assert b"The set has 13 rows; a training run needs at least 20" in response.content
    assert not TrainingRun.objects.exists()
    assert signed_in(annotator).post(reverse("amplification:distil"), form).status_code == 403
    assert signed_in(researcher).put(reverse("amplification:distil")).status_code == 405
