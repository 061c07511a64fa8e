"""The training-run API: start, list, read; bad input refused with nothing created."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from llm.models import TrainingRun, TrainingStatus
from tests.helpers import Api
from tests.llm.training_data import bundled_config, learnable_rows, openai_config


@pytest.fixture(autouse=True)
def no_worker() -> Any:
    with mock.patch("llm.tasks.training_run_task.delay") as enqueue:
        yield enqueue


def body(parent_id: int, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "parent_config": parent_id, "name": "distilled",
        "rows": [row.model_dump() for row in learnable_rows(24)],
        "hyperparameters": {"max_steps": 2, "learning_rate": 0.0003},
    }  # fmt: skip
    values.update(overrides)
    return values


def test_a_researcher_starts_a_run_and_reads_it(researcher):
    parent = bundled_config()
    api = Api(researcher)
    response = api.post("/training-runs/", body(parent.pk))
    assert response.status_code == 202, response.content
    run = response.json()
    assert run["status"] == TrainingStatus.QUEUED and run["parent_config"] == parent.pk
    assert run["row_count"] == 24 and run["source"] == "the API" and run["result_config"] is None
    assert run["hyperparameters"]["max_steps"] == 2 and len(run["dataset_hash"]) == 64
    assert api.get(f"/training-runs/{run['id']}").json()["dataset_hash"] == run["dataset_hash"]
    assert [r["id"] for r in api.get("/training-runs/").json()] == [run["id"]]


@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        ({"rows": [{"prompt": "p", "completion": "c"}] * 3}, 400, "at least 20"),
        ({"extra": 1}, 422, ""),
        ({"rows": [{"prompt": "p", "completion": "c", "id": 1}] * 20}, 422, ""),
        ({"hyperparameters": {"learning_rate": "0.1"}}, 422, ""),
        ({"parent_config": 999_999}, 404, "No such model config"),
    ],
)
def test_bad_input_is_refused_and_starts_nothing(researcher, change, status, detail):
    parent = bundled_config()
    response = Api(researcher).post("/training-runs/", body(parent.pk, **change))
    assert response.status_code == status, response.content
    assert detail in response.json()["detail"]
    assert not TrainingRun.objects.exists()


def test_a_server_model_is_refused(researcher):
    response = Api(researcher).post("/training-runs/", body(openai_config().pk))
    assert response.status_code == 400
    assert "training needs a local transformers model" in response.json()["detail"]
    assert not TrainingRun.objects.exists()


def test_annotators_may_not(annotator):
    api = Api(annotator)
    assert api.get("/training-runs/").status_code == 403
    assert api.post("/training-runs/", body(bundled_config().pk)).status_code == 403
    assert not TrainingRun.objects.exists()
