import json

import pytest

from annotations.kinds import QueueKind
from debate.models import Debate, JudgeTurn, Speech, Verdict
from debate.nyu import room_record, story_from_tokens
from debate.research.imports import debate_files_import
from debate.research.records import debates_export_lines
from debate.services import debate_prior_submit, judge_turn_submit
from rewards.models import DebateScore, RewardModel
from rewards.services import reward_model_save
from tests.annotations.factories import make_queue
from tests.debate.research_data import ROOMS, nyu_files
from tests.factories import DebateFactory
from tests.rewards.factories import active_version

pytestmark = pytest.mark.django_db


def _export() -> list[str]:
    return list(debates_export_lines(Debate.objects.all()))


def test_export_then_import_gives_back_the_same_debates(annotator, enqueued):
    report = debate_files_import(files=nyu_files(rooms=12))
    assert report.errors == []
    native = DebateFactory(judge=annotator, max_rounds=1, rounds_mode="fixed")
    debate_prior_submit(debate_id=native.pk, judge=annotator, probability_a=50)
    Speech.objects.filter(debate=native).update(
        status="done",
        text="A says <quote>door green</quote> & <b>bold</b>",
        quotes=[{"text": "door green", "verified": True, "over_limit": False}],
    )
    Debate.objects.filter(pk=native.pk).update(status="awaiting_judge")
    judge_turn_submit(debate_id=native.pk, judge=annotator, probability_a=80, action="end",
                      rationale="A quoted the passage.")  # fmt: skip
    before = _export()
    counts = (Debate.objects.count(), Speech.objects.count(), JudgeTurn.objects.count(),
              Verdict.objects.count())  # fmt: skip

    Debate.objects.all().delete()
    filename = "export.jsonl"
    again = debate_files_import(files=[(filename, "".join(before).encode())])
    assert again.errors == []
    assert _export() == before
    assert (Debate.objects.count(), Speech.objects.count(), JudgeTurn.objects.count(),
            Verdict.objects.count()) == counts  # fmt: skip

    # Importing the same export once more updates in place: nothing is duplicated.
    debate_files_import(files=[(filename, "".join(before).encode())])
    assert _export() == before
    assert Debate.objects.count() == counts[0]


def test_a_full_room_keeps_its_quotes_as_spans_of_the_story():
    data = json.loads(ROOMS[0].read_text())
    record = room_record(data, name=ROOMS[0].stem)
    tokens = data["setup"]["sourceMaterial"]["QuALITYSourceMaterial"]["contents"]
    story = story_from_tokens(tokens)
    quotes = [quote for speech in record.speeches for quote in speech.quotes]
    assert quotes and all(quote.verified for quote in quotes)
    for quote in quotes:
        assert quote.span is not None
        assert quote.text == story.span(*quote.span)
        assert quote.text in record.source_material
        assert f"<quote>{quote.text}</quote>" in "".join(s.text for s in record.speeches)


def _room(**changes):
    data = json.loads(ROOMS[0].read_text())
    for change in changes.values():
        change(data)
    return data


def _bad_span(data):
    for entry in data["rounds"]:
        for kind, body in entry.items():
            if "Speeches" in kind:
                for speech in body["speeches"].values():
                    speech["content"].append({"Quote": {"span": [10_000_000, 10_000_001]}})
                    return


def _bad_probabilities(data):
    for entry in data["rounds"]:
        if "JudgeFeedback" in entry:
            entry["JudgeFeedback"]["distribution"] = [0.7, 0.7]
            return


def _nul(data):
    data["setup"]["question"] = "What\x00 now?"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_bad_span, "does not fit the story's"),
        (_bad_probabilities, "do not sum to 1"),
        (_nul, "NUL"),
        (lambda data: data.pop("setup"), "not the NYU schema"),
    ],
)
def test_a_bad_room_is_named_with_its_reason_and_nothing_of_it_is_written(change, reason):
    good = ROOMS[1]
    bad = json.dumps(_room(change=change)).encode()
    report = debate_files_import(files=[
        ("broken-room.json", bad), (good.name, good.read_bytes()), ("x.json", b"{not json"),
    ])  # fmt: skip
    assert report.imported == [good.stem]
    errors = dict(report.errors)
    assert reason in errors["broken-room.json"]
    assert "not JSON" in errors["x.json"]
    assert list(Debate.objects.values_list("room_name", flat=True)) == [good.stem]


def test_a_bad_metadata_line_is_named_by_its_number_and_the_other_lines_import():
    lines = nyu_files(rooms=0)[0][1].decode().splitlines()[:3]
    broken = json.loads(lines[1])
    broken["status"] = {"Complete": {"result": {"correctAnswerIndex": 0, "judgingInfo": {
        "correctAnswerIndex": 0, "numContinues": 1, "finalJudgement": [0.2, 0.2]}}}}  # fmt: skip
    lines[1] = json.dumps(broken)
    report = debate_files_import(files=[("meta.jsonl", "\n".join(lines).encode())])
    assert [where for where, _ in report.errors] == ["meta.jsonl:2"]
    assert len(report.imported) == 2
    assert Debate.objects.count() == 2


def test_reimporting_a_room_updates_it_and_metadata_keeps_its_transcript():
    files = nyu_files(rooms=3)
    debate_files_import(files=files)
    counts = (Debate.objects.count(), Speech.objects.count(), Verdict.objects.count())
    debate_files_import(files=files[1:])  # the rooms alone, again
    debate_files_import(files=files[:1])  # the metadata alone, again
    assert (Debate.objects.count(), Speech.objects.count(), Verdict.objects.count()) == counts
    room = Debate.objects.get(room_name=ROOMS[0].stem)
    assert room.has_transcript and room.included_in_paper is not None


def test_a_room_imported_again_is_scored_again_only_when_its_transcript_changed(annotator):
    metadata, room = nyu_files(rooms=1)
    debate_files_import(files=[metadata, room])
    debate = Debate.objects.get(room_name=ROOMS[0].stem)
    queue = make_queue(members=[annotator], kind=QueueKind.DEBATE_JUDGMENT)
    reward_model = reward_model_save(reward_model=RewardModel(name="rm"), queues=[queue],
                                     user=None)  # fmt: skip
    DebateScore.objects.create(version=active_version(reward_model), debate_id=debate.pk,
                               reward_a=1.0, reward_b=0.0, probability_a=0.73)  # fmt: skip
    scored = DebateScore.objects.filter(debate_id=debate.pk)

    debate_files_import(files=[room])  # the same transcript
    debate_files_import(files=[metadata])  # no transcript: the room's is kept
    assert scored.exists()

    said = "its definitely lighthearted in the beginning:"
    assert said.encode() in room[1]
    edited = room[1].replace(said.encode(), b"it is grim from the first line:")
    debate_files_import(files=[(room[0], edited)])
    assert Speech.objects.filter(debate=debate, text__contains="grim from the first").exists()
    assert not scored.exists()  # the automatic judge's next fill scores what it says now


@pytest.mark.parametrize(
    "broken",
    [
        {"setup": [], "rounds": []},
        {"setup": {"roles": [], "sourceMaterial": {"Q": {"contents": ["a"]}}}, "rounds": []},
        {"setup": json.loads(ROOMS[0].read_text())["setup"], "rounds": [{"JudgeFeedback": 3}]},
        {"setup": json.loads(ROOMS[0].read_text())["setup"], "rounds": "x"},
        {"name": "m", "roleAssignments": [], "setting": {}, "status": {}},
        {"name": "m", "roleAssignments": {"Judge": "j"}, "setting": {"isHuman": True,
         "isDebate": True}, "question": "q", "status": {"Complete": {"result": {
             "correctAnswerIndex": 0, "judgingInfo": None}, "offlineJudgingResults": {
             "x": {"judgments": [1, 2]}}}}},
        [],
        "text",
    ],
)  # fmt: skip
def test_malformed_files_are_reported_not_crashed_on(broken):
    report = debate_files_import(files=[("odd.json", json.dumps(broken).encode())])
    assert report.imported == [] and report.errors[0][0] == "odd.json"
    assert Debate.objects.count() == 0


def test_imported_rooms_feed_a_debate_judgment_queue_like_native_debates():
    from annotations.models import Item
    from debate.services import debates_to_queue
    from tests.annotations.factories import QueueFactory

    debate_files_import(files=nyu_files(rooms=3))  # and 628 metadata-only rooms
    queue = QueueFactory(kind="debate_judgment", labels_per_item=1)
    assert debates_to_queue(queue=queue) == 3
    item = Item.objects.filter(queue=queue).first()
    assert item.payload["turns"] and "passage" not in item.payload
