import json
import re

import pytest

from debate.models import BankQuestion, Debate, DebateBatch
from debate.research.imports import debate_files_import
from tests.debate.research_data import METADATA, ROOMS
from tests.debate.research_factories import BankQuestionFactory, QuestionBankFactory
from tests.factories import ModelConfigFactory
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db


def _row(html: str, group: str) -> str:
    match = re.search(rf'<tr data-group="{re.escape(group)}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {group}"
    return " ".join(match.group(1).split())


def test_the_analytics_page_shows_the_papers_figures(researcher):
    debate_files_import(files=[(METADATA.name, METADATA.read_bytes())])
    response = signed_in(researcher).get(
        "/debates/analytics/", {"paper_only": "on", "judge_kind": "human"}
    )
    html = response.content.decode()
    for group, accuracy, n in [("Human debate", 84, 154), ("Human consultancy", 74, 96),
                               ("AI debate", 78, 87), ("AI consultancy", 80, 76)]:  # fmt: skip
        row = _row(html, group)
        assert f'class="num accuracy">{accuracy} %' in row
        assert f'class="num n">{n}<' in row
    assert "88 % (n=48)" in html and "60 % (n=48)" in html  # honest / dishonest consultant
    assert "<svg" in html and "Binning: 5 equal-width bins" in html


def test_research_pages_are_for_researchers_only(annotator, client):
    for url in ["/debates/analytics/", "/debates/import/", "/debates/banks/",
                "/debates/batches/", "/debates/batches/new/", "/debates/export.jsonl"]:  # fmt: skip
        assert signed_in(annotator).get(url).status_code == 403
        assert client.get(url).status_code == 302


def test_wrong_methods_are_refused(researcher):
    client = signed_in(researcher)
    assert client.post("/debates/analytics/").status_code == 405
    assert client.post("/debates/export.jsonl").status_code == 405
    assert client.put("/debates/import/").status_code == 405


def test_the_import_page_names_each_bad_file_and_imports_the_rest(researcher):
    client = signed_in(researcher)
    good = ROOMS[0]
    with good.open("rb") as room:
        response = client.post("/debates/import/", {"uploads": [
            room, _upload("<img src=x onerror=alert(1)>.json", b"[1, 2]"),
        ]})  # fmt: skip
    html = response.content.decode()
    assert "Imported 1 debate" in html
    assert "&lt;img src=x onerror=alert(1)&gt;.json" in html and "<img src=x" not in html
    assert "not the NYU schema" in html
    assert list(Debate.objects.values_list("room_name", flat=True)) == [good.stem]


def _upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def test_a_question_bank_reports_bad_lines_by_number_and_keeps_the_good_ones(researcher):
    lines = [
        {"passage": "P1", "question": "Q1", "options": ["a", "b"], "gold_label": 2},
        {"passage": "P2", "question": "Q2", "options": ["a", "b"]},
        "not an object",
        {"article": "P4", "question": "Q4 <b>", "options": ["a", "b", "c"], "gold_index": 0,
         "distractor_index": 2},
    ]  # fmt: skip
    raw = "\n".join(json.dumps(line) for line in lines).encode() + b"\n{broken"
    response = signed_in(researcher).post(
        "/debates/banks/", {"name": "mine", "file": _upload("bank.jsonl", raw)}
    )
    html = response.content.decode()
    assert "2 questions imported" in html
    assert "line 2</strong>: no gold option" in html
    assert "line 3" in html and "line 5" in html
    questions = BankQuestion.objects.order_by("line")
    assert [(q.line, q.gold_index, q.distractor) for q in questions] == [(1, 1, 0), (4, 0, 2)]

    bank = questions[0].bank
    page = signed_in(researcher).get(f"/debates/banks/{bank.pk}/", {"q": "Q4"}).content.decode()
    main = page[page.index("<main") :]  # not the CSRF token in <body>, which may hold "Q1"
    assert "Q4 &lt;b&gt;" in main and "Q1" not in main


def test_a_batch_is_started_from_the_form(researcher, monkeypatch):
    from debate.tasks import debate_batch_run_task

    sent: list[int] = []
    monkeypatch.setattr(debate_batch_run_task, "delay", sent.append)
    bank = QuestionBankFactory()
    BankQuestionFactory.create_batch(2, bank=bank)
    config = ModelConfigFactory()
    form = {"name": "n", "bank": bank.pk, "count": 2, "protocol": "debate",
            "turn_order": "simultaneous", "rounds": 1, "speech_char_limit": 300,
            "quote_char_limit": 100, "max_new_tokens": 8, "debater_a_config": config.pk,
            "judge_max_new_tokens": 8, "judge_prompt": "{question}"}  # fmt: skip
    client = signed_in(researcher)
    with_no_judge = client.post("/debates/batches/new/", form)
    assert "Choose at least one judge" in with_no_judge.content.decode()
    assert not DebateBatch.objects.exists()

    response = client.post("/debates/batches/new/", form | {"llm_judge_config": config.pk})
    batch = DebateBatch.objects.get()
    assert response.status_code == 302 and response.url == f"/debates/batches/{batch.pk}/"
    assert batch.debates.count() == 2
    progress = client.get(f"/debates/batches/{batch.pk}/", HTTP_HX_REQUEST="true")
    assert 'id="batch-progress"' in progress.content.decode()
    assert "<html" not in progress.content.decode()


def test_the_export_streams_jsonl_records(researcher):
    debate_files_import(files=[(ROOMS[0].name, ROOMS[0].read_bytes())])
    response = signed_in(researcher).get("/debates/export.jsonl", {"source": "nyu-2023"})
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [json.loads(line)["name"] for line in lines] == [ROOMS[0].stem]
    bad = signed_in(researcher).get("/debates/export.jsonl", {"source": "elsewhere", "batch": "x"})
    assert bad.status_code == 400
    body = bad.content.decode()
    assert "Not exported: Source: Select a valid choice. elsewhere is not one of" in body
    assert "Batch: Select a valid choice." in body and 'id="import-form"' in body


def test_the_export_without_a_query_is_every_debate(researcher):
    debate_files_import(files=[(room.name, room.read_bytes()) for room in ROOMS[:2]])
    response = signed_in(researcher).get("/debates/export.jsonl")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert sorted(json.loads(line)["name"] for line in lines) == sorted(r.stem for r in ROOMS[:2])


def test_a_metadata_only_room_says_so_in_the_viewer(researcher):
    line = METADATA.read_text().splitlines()[1]
    debate_files_import(files=[("debates-metadata.jsonl", line.encode())])
    debate = Debate.objects.get()
    html = signed_in(researcher).get(f"/debates/{debate.pk}/").content.decode()
    assert "Only this room's setting and outcome were published" in html
    assert "Verdicts" in html
