"""The AI-feedback API: start a run, follow it, read agreement."""

from __future__ import annotations

import pytest
from sklearn.metrics import cohen_kappa_score

import llm.generation
from feedback.labelling import labelling_run_execute
from feedback.models import LabellingRun
from llm.models import Backend, ModelConfig
from tests.feedback.conftest import humans_label
from tests.feedback.fakes import PicksByWord
from tests.helpers import Api


@pytest.fixture
def picks_a_words(monkeypatch):
    # Items 0 and 2 and the gold items: it picks A wherever A stands. Items 1 and 3 hold none
    # of its words: it answers whichever stands first, so its two orders cancel (a tie).
    backend = PicksByWord(["answer A0", "answer A2", "good"])
    monkeypatch.setattr(llm.generation, "backend_for", lambda config: backend)


def test_start_a_run_then_read_its_agreement(
    model_annotator, queue, researcher, annotator, annotator2, picks_a_words,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    humans_label(queue, [annotator, annotator2], {"0": "a", "1": "b", "2": "a", "3": "a"})
    api = Api(researcher)
    with django_capture_on_commit_callbacks():
        started = api.post(f"/ai-feedback/model-annotators/{model_annotator.pk}/runs", {})
    assert started.status_code == 202, started.content
    run_id = started.json()["id"]
    assert started.json()["status"] == "queued" and started.json()["items_total"] == 6
    again = api.post(f"/ai-feedback/model-annotators/{model_annotator.pk}/runs", {})
    assert again.status_code == 409
    assert "already queued or running" in again.json()["detail"]
    early = api.get(f"/ai-feedback/runs/{run_id}/agreement")
    assert early.status_code == 409

    labelling_run_execute(run_id=run_id)
    assert api.get(f"/ai-feedback/runs/{run_id}").json()["status"] == "done"
    body = api.get(f"/ai-feedback/runs/{run_id}/agreement").json()
    assert [row["principle"] for row in body["principles"]] == ["All", "P1", "P2"]
    overall = body["principles"][0]
    majority = overall["vs_majority"]
    # The model: A on items 0 and 2, a tie on 1 and 3; people say a, b, a, a.
    model, people = ["a", "tie", "a", "tie"], ["a", "b", "a", "a"]
    assert majority["n"] == 4
    assert majority["agreement"]["k"] == 2 and majority["agreement"]["method"].startswith("Wilson")
    assert majority["kappa"] == pytest.approx(
        cohen_kappa_score(model, people, labels=["a", "b", "tie", "both_bad"])
    )
    assert majority["kappa_low"] <= majority["kappa"] <= majority["kappa_high"]
    assert "bootstrap" in majority["kappa_method"]
    assert overall["vs_gold"]["n"] == 2 and overall["vs_gold"]["agreement"]["k"] == 2
    # Items 1 and 3, under each of the two principles: 4 of 12.
    assert (overall["order_disagreement"]["k"], overall["order_disagreement"]["n"]) == (4, 12)
    strongest = body["strongest_disagreements"]
    assert [(d["external_id"], d["model"], d["people"]) for d in strongest] == [
        ("1", "Tie", "B is better"),
        ("3", "Tie", "A is better"),
    ]
    assert {d["probability"] for d in strongest} == {0.5}


def test_the_api_is_for_researchers_and_refuses_what_it_does_not_know(
    model_annotator, annotator, researcher
):
    assert (
        Api(annotator)
        .post(f"/ai-feedback/model-annotators/{model_annotator.pk}/runs", {})
        .status_code
        == 403
    )
    api = Api(researcher)
    assert api.post("/ai-feedback/model-annotators/999999/runs", {}).status_code == 404
    extra = api.post(f"/ai-feedback/model-annotators/{model_annotator.pk}/runs", {"x": 1})
    assert extra.status_code == 422
    assert not LabellingRun.objects.exists()
    assert api.get("/ai-feedback/runs/999999").status_code == 404
    assert api.get("/ai-feedback/runs/999999/agreement").status_code == 404


def test_a_config_that_cannot_give_probabilities_is_a_422_and_starts_nothing(
    model_annotator, researcher
):
    ModelConfig.objects.filter(pk=model_annotator.model_config_id).update(
        backend=Backend.OPENAI, base_url="http://127.0.0.1:9/v1", temperature=0.0
    )
    api = Api(researcher)
    refused = api.post(f"/ai-feedback/model-annotators/{model_annotator.pk}/runs", {})
    assert refused.status_code == 422
    assert "temperature above 0" in refused.json()["detail"]
    assert not LabellingRun.objects.exists()
    documented = api.get("/openapi.json").json()
    operation = documented["paths"]["/api/ai-feedback/model-annotators/{annotator_id}/runs"]
    assert "422" in operation["post"]["responses"]
