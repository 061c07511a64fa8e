import json
from datetime import datetime

import pytest

from debate.models import Debate, DebateBatch
from debate.research.imports import debate_files_import
from debate.research.records import debates_export_lines
from tests.debate.research_data import METADATA, ROOMS
from tests.debate.research_factories import BankQuestionFactory, QuestionBankFactory
from tests.factories import ModelConfigFactory
from tests.helpers import Api

pytestmark = pytest.mark.django_db


def test_a_researcher_lists_fetches_and_reimports_debates(researcher):
    debate_files_import(files=[(ROOMS[0].name, ROOMS[0].read_bytes())])
    api = Api(researcher)
    page = api.get("/debates/?source=nyu-2023&limit=10").json()
    assert page["count"] == 1 and page["results"][0]["name"] == ROOMS[0].stem
    record = api.get(f"/debates/{page['results'][0]['id']}").json()
    exported = json.loads(next(debates_export_lines(Debate.objects.all())))
    # The same record as the export (ninja writes datetimes with milliseconds only).
    assert datetime.fromisoformat(record.pop("created_at")) == datetime.fromisoformat(
        exported.pop("created_at")
    )
    assert record == exported
    assert record["speeches"][0]["quotes"][0]["span"]

    record["created_at"] = exported_time = "2023-07-21T14:18:15.904000Z"
    again = api.post("/debates/import", {"records": [record]})
    assert again.status_code == 200, again.content[:600]
    assert again.json() == {"names": [ROOMS[0].stem], "created": [], "updated": [ROOMS[0].stem]}
    assert Debate.objects.count() == 1
    assert Debate.objects.get().created_at == datetime.fromisoformat(exported_time)

    record["speeches"][0]["text"] = "nul \u0000 here"
    bad = api.post("/debates/import", {"records": [record]})
    assert bad.status_code == 422
    assert Debate.objects.get().speeches.first().text != "nul \u0000 here"


def test_a_researcher_creates_a_debate_and_a_batch(researcher, annotator, enqueued, monkeypatch):
    from debate.tasks import debate_batch_run_task

    monkeypatch.setattr(debate_batch_run_task, "delay", lambda batch_id: None)
    api = Api(researcher)
    config = ModelConfigFactory()
    created = api.post("/debates/", {
        "question": "Q?", "answer_a": "A", "answer_b": "B", "correct_side": "a",
        "debater_a_config_id": config.pk, "judge_username": annotator.username,
    })  # fmt: skip
    assert created.status_code == 201, created.content
    assert Debate.objects.get(pk=created.json()["id"]).judge == annotator
    for blank in ({"question": " \n"}, {"answer_b": "  "}):
        refused = api.post("/debates/", {
            "question": "Q?", "answer_a": "A", "answer_b": "B", "debater_a_config_id": config.pk,
            "judge_username": annotator.username,
        } | blank)  # fmt: skip
        assert refused.status_code == 422, blank
    missing = api.post("/debates/", {
        "question": "Q?", "answer_a": "A", "answer_b": "B", "debater_a_config_id": 2**62,
        "judge_username": annotator.username,
    })  # fmt: skip
    assert missing.status_code == 404

    bank = QuestionBankFactory()
    BankQuestionFactory.create_batch(2, bank=bank)
    body = {"name": "api batch", "bank_id": bank.pk, "llm_judge_config_id": config.pk,
            "spec": {"debater_a_config_id": config.pk, "count": 2, "rounds": 1}}  # fmt: skip
    batch = api.post("/debates/batches/", body)
    assert batch.status_code == 201, batch.content
    assert len(batch.json()["debate_ids"]) == 2 and batch.json()["status"] == "queued"
    assert api.get(f"/debates/batches/{batch.json()['id']}").json()["steps_total"] == 6
    too_many = api.post("/debates/batches/", body | {"spec": body["spec"] | {"count": 3}})
    assert too_many.status_code == 400 and "Only 2 questions" in too_many.json()["detail"]
    assert DebateBatch.objects.count() == 1
    assert api.get("/debates/batches/").json()[0]["name"] == "api batch"


def test_the_api_analytics_give_the_papers_figures(researcher):
    debate_files_import(files=[(METADATA.name, METADATA.read_bytes())])
    stats = Api(researcher).get("/debates/analytics/?paper_only=true&judge_kind=human").json()
    figures = {g["name"]: (round(100 * g["accuracy"]["value"]), g["accuracy"]["n"])
               for g in stats["groups"]}  # fmt: skip
    assert figures["Human debate"] == (84, 154) and figures["AI consultancy"] == (80, 76)


def test_annotators_and_strangers_are_refused(annotator, client):
    assert Api(annotator).get("/debates/").status_code == 403
    assert Api().get("/debates/").status_code == 401
    api = Api(annotator)
    assert api.get("/debates/1").status_code == 403


def test_ids_and_sizes_are_bounded(researcher):
    api = Api(researcher)
    assert api.get("/debates/0").status_code == 422
    assert api.get(f"/debates/{2**63}").status_code == 422
    assert api.get(f"/debates/{2**63 - 1}").status_code == 404
    assert api.get("/debates/?limit=100000").status_code == 422
    assert api.post("/debates/import", {"records": []}).status_code == 422


def test_the_largest_passage_the_schema_allows_fits_and_a_bigger_body_is_a_413(
    researcher, annotator, settings
):
    api = Api(researcher)
    config = ModelConfigFactory()
    body = {
        "question": "Q?", "answer_a": "A", "answer_b": "B", "correct_side": "a",
        "debater_a_config_id": config.pk, "judge_username": annotator.username,
        "passage": "\u00e9" * 1_000_000,  # 6 MB as JSON with ASCII escapes
    }  # fmt: skip
    created = api.post("/debates/", body)
    assert created.status_code == 201, created.content[:300]
    assert len(Debate.objects.get().passage) == 1_000_000

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 5_000_000
    refused = api.post("/debates/", body)
    assert refused.status_code == 413
    assert refused.json()["detail"].startswith("body: larger than this server's limit of 5,000,000")
    assert Debate.objects.count() == 1


def test_hostile_input_is_a_4xx_not_a_crash(researcher):
    api = Api(researcher)
    config = ModelConfigFactory()
    bank = QuestionBankFactory()
    BankQuestionFactory(bank=bank)
    spec = {"debater_a_config_id": config.pk, "count": 1}
    for body in [
        {"name": "nul\u0000", "bank_id": bank.pk, "spec": spec, "llm_judge_config_id": config.pk},
        {"name": "x", "bank_id": bank.pk, "spec": spec | {"question_filter": "\u0000"}},
        {"name": "x", "bank_id": bank.pk, "spec": spec | {"human_queue_id": 2**63}},
    ]:
        assert api.post("/debates/batches/", body).status_code == 422
    braces = {"name": "x", "bank_id": bank.pk, "spec": spec, "llm_judge_config_id": config.pk,
              "judge_prompt": "{question.upper}"}  # fmt: skip
    assert api.post("/debates/batches/", braces).status_code == 400

    debate_files_import(files=[(ROOMS[0].name, ROOMS[0].read_bytes())])
    record = api.get(f"/debates/{Debate.objects.get().pk}").json()
    for change in [{"name": "arbiter-99999999999999999999999"},
                   {"extras": {"rules": {"x": "\u0000"}, "offline_judgments": []}},
                   {"created_at": "2023-07-21T14:18:15"}]:  # fmt: skip
        response = api.post("/debates/import", {"records": [record | change]})
        assert response.status_code in (200, 422), response.content
    assert Debate.objects.filter(room_name__startswith="arbiter-9").count() == 1
    assert api.post("/debates/import", {"records": [record | {
        "extras": {"rules": {"x": "\u0000"}}}]}).status_code == 422  # fmt: skip
