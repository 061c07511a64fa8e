"""Imports apply Arbiter's own checks: quotes are verified again, a span past the story's end
is clipped and marked, every field follows the rule the API and the forms apply, and the
summary counts debates."""

import json
from pathlib import Path

import pytest

from debate.models import BankQuestion, Debate, Speech
from debate.records import MAX_PASSAGE_CHARS
from debate.research.analytics import Filters, analytics_compute
from debate.research.imports import debate_files_import, question_bank_import
from tests.debate.research_data import METADATA, ROOMS, arbiter_record, nyu_files
from tests.factories import DebateFactory
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db

# The one NYU room (of the 413 the paper analyses) whose quote span runs past the story's end:
# debates/official/a-pail-of-air-7.json of julianmichael/debate (CC-BY 4.0), as published.
PAIL_OF_AIR = Path(__file__).parent / "data" / "a-pail-of-air-7.json"


def _jsonl(*records) -> bytes:
    return "\n".join(json.dumps(record) for record in records).encode()


def test_a_fabricated_quote_imports_unverified_and_the_page_shows_it_so(researcher):
    record = arbiter_record()
    fabricated = "the keeper confessed he hated green"
    record["speeches"][0]["text"] = f"A says <quote>{fabricated}</quote>."
    record["speeches"][0]["quotes"] = [
        {"text": fabricated, "verified": True, "over_limit": False, "span": [90, 3]}
    ]
    report = debate_files_import(files=[("export.jsonl", _jsonl(record))])
    assert report.errors == [] and report.created == [record["name"]]

    speech = Speech.objects.get()
    assert speech.quotes == [{"text": fabricated, "verified": False, "over_limit": False,
                              "span": [90, 3], "span_clipped": False}]  # fmt: skip
    html = signed_in(researcher).get(f"/debates/{speech.debate_id}/").content.decode()
    assert f'<q class="quote unverified" title="not found in the passage">{fabricated}</q>' in html
    assert 'class="quote verified' not in html  # nothing under "Verified quotes"


def test_a_quote_found_in_the_passage_is_verified_whatever_the_file_says():
    record = arbiter_record()
    record["speeches"][0]["quotes"][0]["verified"] = False
    debate_files_import(files=[("export.jsonl", _jsonl(record))])
    assert Speech.objects.get().quotes[0]["verified"] is True


def test_quotes_that_are_not_the_texts_tags_are_refused_with_the_line():
    record = arbiter_record()
    record["speeches"][0]["quotes"][0]["text"] = "the salt wind"  # the tag says "door green"
    report = debate_files_import(
        files=[("export.jsonl", _jsonl(arbiter_record(name="ok"), record))]
    )
    assert [where for where, _ in report.errors] == ["export.jsonl:2"]
    assert "<quote> tags" in report.errors[0][1]
    assert list(Debate.objects.values_list("room_name", flat=True)) == ["ok"]


def test_a_pail_of_air_7_imports_with_its_span_clipped_and_counts():
    line = next(
        raw for raw in METADATA.read_bytes().splitlines() if b'"name":"a-pail-of-air-7"' in raw
    )
    assert json.loads(line)["includedInPaper"] is True
    report = debate_files_import(files=[
        ("debates-metadata.jsonl", line), (PAIL_OF_AIR.name, PAIL_OF_AIR.read_bytes()),
    ])  # fmt: skip
    assert report.errors == []
    assert (report.created, report.updated) == (["a-pail-of-air-7"], [])

    debate = Debate.objects.get(room_name="a-pail-of-air-7")
    assert debate.has_transcript and debate.included_in_paper
    last = debate.speeches.order_by("round").last()
    assert last.text.startswith("<quote>.</quote> - 6926 is the last period of the story")
    # Published as [6926, 6929] of a 6,927-token story: cut at its end, and marked.
    assert last.quotes == [{"text": ".", "verified": False, "over_limit": False,
                            "span": [6926, 6927], "span_clipped": True}]  # fmt: skip
    clipped = [q for s in debate.speeches.all() for q in s.quotes if q["span_clipped"]]
    assert len(clipped) == 1
    # Every other quote is a span of the story, so Arbiter's check finds it; "." is only
    # punctuation, which verifies nothing.
    published = [
        part for entry in json.loads(PAIL_OF_AIR.read_text())["rounds"]
        for body in entry.get("SequentialSpeeches", {"speeches": {}})["speeches"].values()
        for part in body["content"] if "Quote" in part
    ]  # fmt: skip
    quotes = [q for s in debate.speeches.all() for q in s.quotes]
    assert len(quotes) == len(published)
    assert [q["text"] for q in quotes if not q["verified"]] == ["."]

    # The judge's verdict (0.8 on the correct answer, "Two") counts in the paper's figures.
    stats = analytics_compute(Filters(group_by="setting", judge_kind="human", paper_only=True))
    (group,) = stats.groups
    assert (group.accuracy.k, group.accuracy.n) == (1, 1)


def test_the_clipped_span_says_so_on_the_debate_page(researcher):
    debate_files_import(files=[(PAIL_OF_AIR.name, PAIL_OF_AIR.read_bytes())])
    debate = Debate.objects.get(room_name="a-pail-of-air-7")
    html = signed_in(researcher).get(f"/debates/{debate.pk}/").content.decode()
    assert "its published span ran past the story&#x27;s end and was cut there" in html


def test_a_span_that_starts_past_the_story_is_still_refused():
    data = json.loads(PAIL_OF_AIR.read_text())
    data["rounds"][-2]["SequentialSpeeches"]["speeches"]["0"]["content"][0] = {
        "Quote": {"span": [6927, 6930]}
    }
    report = debate_files_import(files=[(PAIL_OF_AIR.name, json.dumps(data).encode())])
    assert "quote span [6927, 6930] does not fit the story's 6927 tokens" in report.errors[0][1]
    assert not Debate.objects.exists()


def _consultancy_of_two(record):
    record["setting"] = {"is_human": True, "is_debate": False}
    record["consultant"] = "a"
    record["roles"] = {"Debater A": "x", "Debater B": "y"}
    return record


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r | {"question": "   "}, "question: must not be empty or only whitespace"),
        (lambda r: r | {"question": ""}, "question: must not be empty or only whitespace"),
        (lambda r: r | {"answers": ["Green", " \n"]}, "answer 2 is empty"),
        (lambda r: r | {"answers": ["Green", "Green "]}, "answers 1 and 2 are the same"),
        (lambda r: r | {"source_material": "x" * (MAX_PASSAGE_CHARS + 1)},
         "source_material: Value should have at most 1000000"),
        (lambda r: r | {"correct_answer_index": True}, "correct_answer_index"),
        (_consultancy_of_two, "a consultancy has one debater, not two"),
        (lambda r: r | {"verdicts": []}, "a judged debate has at least one verdict"),
    ],
)  # fmt: skip
def test_imports_refuse_what_the_api_refuses_naming_the_line(change, reason):
    good, bad = arbiter_record(name="good"), change(arbiter_record(name="bad"))
    report = debate_files_import(files=[("export.jsonl", _jsonl(good, bad))])
    assert [where for where, _ in report.errors] == ["export.jsonl:2"]
    assert reason in report.errors[0][1]
    assert "Value error" not in report.errors[0][1]
    assert list(Debate.objects.values_list("room_name", flat=True)) == ["good"]


def test_the_api_refuses_the_same_record(researcher):
    from tests.helpers import Api

    bad = arbiter_record(question=" ")
    response = Api(researcher).post("/debates/import", {"records": [bad]})
    assert response.status_code == 422
    assert not Debate.objects.exists()


def test_the_summary_counts_debates_created_and_updated():
    files = nyu_files(rooms=3)  # 631 metadata lines, 3 of them rooms again
    first = debate_files_import(files=files)
    assert (len(first.created), len(first.updated), len(first.imported)) == (631, 0, 631)
    again = debate_files_import(files=files[1:])
    assert (again.created, sorted(again.updated)) == ([], sorted(p.stem for p in ROOMS[:3]))


def test_the_import_page_counts_debates_not_records(researcher):
    client = signed_in(researcher)
    with METADATA.open("rb") as metadata, ROOMS[0].open("rb") as room:
        html = client.post("/debates/import/", {"uploads": [metadata, room]}).content.decode()
    assert "Imported 631 debates" in html and "631 created, 0 updated" in html
    with ROOMS[0].open("rb") as room:
        html = client.post("/debates/import/", {"uploads": [room]}).content.decode()
    assert "Imported 1 debate<" in html and "0 created, 1 updated" in html


def test_the_import_page_refuses_uploads_over_the_total_cap(researcher, settings):
    settings.DEBATE_IMPORT_MAX_BYTES = 100_000
    with ROOMS[0].open("rb") as one, ROOMS[1].open("rb") as two, ROOMS[2].open("rb") as three:
        response = signed_in(researcher).post("/debates/import/", {"uploads": [one, two, three]})
    html = response.content.decode()
    assert response.status_code == 200
    assert "These 3 files come to" in html and "at most 97.7\xa0KB" in html
    assert "Import them in parts." in html
    assert not Debate.objects.exists()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ({"question": "Q", "options": ["a", "b"], "gold_index": True},
         "gold_index: Input should be a valid integer"),
        ({"question": "Q", "options": ["a", " "], "gold_index": 0}, "options.1: must not be empty"),
        ({"question": "Q", "options": ["a", "a"], "gold_index": 0}, "answers 1 and 2 are the same"),
        ({"question": " ", "options": ["a", "b"], "gold_index": 0}, "question: must not be empty"),
        ({"question": "Q", "options": ["a", "b"], "gold_index": 0, "passage": "x" * 1_000_001},
         "passage: Value should have at most 1000000"),
    ],
)  # fmt: skip
def test_a_question_bank_applies_the_same_rules(line, reason):
    good = {"passage": "P", "question": "Q", "options": ["a", "b"], "gold_index": 1}
    raw = _jsonl(good, {"passage": "P"} | line)
    bank, report = question_bank_import(name="b", raw=raw, created_by=None)
    assert report.errors == [("line 2", report.errors[0][1])]
    assert reason in report.errors[0][1] and "Value error" not in report.errors[0][1]
    assert list(BankQuestion.objects.values_list("line", flat=True)) == [1]


def test_the_data_migration_verifies_quotes_imported_before_again():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("debate.migrations.0009_fill_imported_quote_verification")
    debate_files_import(files=[("export.jsonl", _jsonl(arbiter_record(name="old-import")))])
    live = DebateFactory()  # a live debate: its flags are Arbiter's already, and left alone
    live_quotes = [{"text": "kept as it is", "verified": True, "over_limit": False}]
    Speech.objects.create(debate=live, round=1, side="a", status="done", text="x",
                          quotes=live_quotes)  # fmt: skip
    # What an import stored before: the file's own flag, for a quote the passage lacks.
    imported = Speech.objects.get(debate__room_name="old-import")
    imported.text = "A says <quote>the keeper hated green</quote>."
    imported.quotes = [{"text": "the keeper hated green", "verified": True, "over_limit": False}]
    imported.save()

    migration.recheck(apps, None)
    imported.refresh_from_db()
    assert imported.quotes == [{
        "text": "the keeper hated green", "verified": False, "over_limit": False, "span": None,
        "span_clipped": False,
    }]  # fmt: skip
    assert Speech.objects.get(debate=live).quotes == live_quotes
