from __future__ import annotations

import pytest

from experiments.models import Arm, Experiment
from experiments.services import participant_join
from tests.experiments.conftest import bank, question_set
from tests.factories import ModelConfigFactory
from tests.helpers import Api

pytestmark = pytest.mark.django_db


def body(queue, config, **changes):
    data = {
        "name": "API study",
        "slug": "api-study",
        "question_set_id": queue.pk,
        "arms": [
            {"name": "Alone"},
            {
                "name": "With critique",
                "assistance": "critique",
                "model_config_id": config.pk,
                "time_limit_s": 60,
            },
        ],  # fmt: skip
        "consent": "You agree.",
        "completion_code": "ABC123",
    }
    data.update(changes)
    return data


def test_a_researcher_creates_an_experiment_adds_an_arm_and_reads_the_analysis(researcher):
    api, queue, config = Api(researcher), question_set(), ModelConfigFactory()
    created = api.post("/experiments/", body(queue, config))
    assert created.status_code == 201, created.content
    out = created.json()
    assert [arm["name"] for arm in out["arms"]] == ["Alone", "With critique"]
    added = api.post(f"/experiments/{out['id']}/arms", {"name": "Suggested", "assistance":
                     "suggestion", "model_config_id": config.pk})  # fmt: skip
    assert added.status_code == 201 and added.json()["position"] == 2
    experiment = Experiment.objects.get(pk=out["id"])
    participant_join(experiment=experiment, external_id="P1", study_id="s", session_id="x")
    frozen = api.post(f"/experiments/{out['id']}/arms", {"name": "Late arm"})
    assert frozen.status_code == 409 and "frozen" in frozen.json()["detail"]
    analysis = api.get(f"/experiments/{out['id']}/analysis").json()
    assert [row["participants"] for row in analysis["arms"]].count(1) == 1
    assert "bootstrap" in analysis["methods"]["difference"]
    assert analysis["arms"][0]["accuracy"]["method"].startswith("Wilson")


@pytest.mark.parametrize(
    ("changes", "status", "words"),
    [
        ({"arms": [{"name": "one"}]}, 422, "at least 2"),
        ({"arms": [{"name": "a", "time_limit_s": 0}, {"name": "b"}]}, 422, "greater than"),
        ({"arms": [{"name": "a", "time_limit_s": 5000}, {"name": "b"}]}, 422, "less than"),
        ({"arms": [{"name": "a"}, {"name": "b", "assistance": "critique"}]}, 422,
         "choose the model config"),
        ({"arms": [{"name": "a"}, {"name": "b", "extra": 1}]}, 422, ""),
    ],
)  # fmt: skip
def test_bad_designs_are_refused_with_the_one_error_shape_and_create_nothing(
    researcher, changes, status, words
):
    api, queue, config = Api(researcher), question_set(), ModelConfigFactory()
    refused = api.post("/experiments/", body(queue, config, **changes))
    assert refused.status_code == status
    problem = refused.json()
    assert set(problem) == {"detail", "errors"}
    assert words in refused.content.decode()
    assert not Experiment.objects.exists() and not Arm.objects.exists()


def test_a_question_set_without_gold_is_refused(researcher):
    api, config = Api(researcher), ModelConfigFactory()
    refused = api.post("/experiments/", body(question_set(gold=False), config))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "question_set"


def test_annotators_cannot_use_the_experiments_api(annotator):
    assert Api(annotator).get("/experiments/1/analysis").status_code == 403


def bank_body(question_bank, config, **changes):
    data = {
        "name": "Bank study",
        "slug": "bank-study",
        "question_bank_id": question_bank.pk,
        "arms": [
            {"name": "Alone", "protocol": "direct", "time_limit_s": 90},
            {"name": "Consulted", "protocol": "consultancy", "model_config_id": config.pk},
            {"name": "Debated", "protocol": "debate", "model_config_id": config.pk},
        ],
        "consent": "You agree.",
        "completion_code": "ABC123",
    }
    data.update(changes)
    return data


def test_a_researcher_creates_a_question_bank_experiment_with_protocol_arms(
    researcher, transcripts_sent, django_capture_on_commit_callbacks
):
    api, config = Api(researcher), ModelConfigFactory()
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/experiments/", bank_body(bank(), config))
    assert created.status_code == 201, created.content
    out = created.json()
    assert out["question_set_id"] is None and out["question_bank_id"] is not None
    assert [(a["protocol"], a["assistance"]) for a in out["arms"]] == [
        ("direct", "none"), ("consultancy", "none"), ("debate", "none")]  # fmt: skip
    assert len(transcripts_sent) == 2  # consultancy and debate: generated ahead
    analysis = api.get(f"/experiments/{out['id']}/analysis").json()
    assert [row["protocol"] for row in analysis["arms"]] == ["direct", "consultancy", "debate"]
    assert "50 %" in analysis["methods"]["accuracy"]


@pytest.mark.parametrize(
    ("changes", "status", "field", "words"),
    [
        ({"arms": [{"name": "a", "protocol": "direct"},
                   {"name": "b", "protocol": "debate"}]}, 422, "arms.1.model_config",
         "speaks its transcripts"),
        ({"arms": [{"name": "a", "protocol": "direct"},
                   {"name": "b", "assistance": "critique", "model_config_id": 0}]}, 422, "",
         ""),
        ({"arms": [{"name": "a", "protocol": "direct"}, {"name": "b", "protocol": "market"}]},
         422, "", ""),
        ({"arms": [{"name": "a", "protocol": "direct"}, {"name": "b", "protocol": True}]},
         422, "", ""),
        ({"question_bank_id": None}, 422, "question_set", "one of them"),
        ({"question_bank_id": 999_999}, 404, None, ""),
    ],
)  # fmt: skip
def test_bad_bank_designs_are_refused_as_json_and_create_nothing(
    researcher, changes, status, field, words
):
    api, config = Api(researcher), ModelConfigFactory()
    refused = api.post("/experiments/", bank_body(bank(), config, **changes))
    assert refused.status_code == status, refused.content
    problem = refused.json()
    assert "detail" in problem
    if field:
        assert problem["errors"][0]["field"] == field
    assert words in refused.content.decode()
    assert not Experiment.objects.exists() and not Arm.objects.exists()


def test_assistance_on_a_bank_and_protocols_on_a_queue_are_refused(researcher):
    api, config = Api(researcher), ModelConfigFactory()
    arms = [{"name": "a", "protocol": "direct"},
            {"name": "b", "assistance": "critique", "model_config_id": config.pk}]  # fmt: skip
    on_bank = api.post("/experiments/", bank_body(bank(), config, arms=arms))
    assert on_bank.status_code == 422
    assert on_bank.json()["errors"][0]["field"] == "arms.1.assistance"
    on_queue = api.post("/experiments/", body(question_set(), config, arms=arms))
    assert on_queue.status_code == 422
    assert on_queue.json()["errors"][0]["field"] == "arms.0.protocol"
    assert not Experiment.objects.exists()


def test_the_openapi_document_lists_the_protocols_and_the_refusals(client):
    document = client.get("/api/openapi.json").json()
    operation = document["paths"]["/api/experiments/"]["post"]
    assert {"201", "404", "409", "422"} <= set(operation["responses"])
    schemas = document["components"]["schemas"]
    arm = schemas["ArmIn"]["properties"]["protocol"]
    assert "consultancy" in str(arm) and "debate" in str(arm) and "direct" in str(arm)
    assert "question_bank_id" in schemas["ExperimentIn"]["properties"]
