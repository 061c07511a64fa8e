import pytest
from django.core.management import call_command

from debate import demo
from debate.models import Debate, QuestionBank
from tests.debate.research_data import ROOMS

pytestmark = pytest.mark.django_db


def test_the_demo_seed_brings_real_rooms_and_a_bank_once(researcher, annotator):
    lines = demo.seed()
    assert any("NYU 2023" in line for line in lines)
    rooms = Debate.objects.filter(room_name__in=demo.DEMO_ROOMS, has_transcript=True)
    assert rooms.count() == len(demo.DEMO_ROOMS)
    assert {(d.human_debaters, d.protocol) for d in rooms} == {
        (True, "debate"),
        (True, "consultancy"),
        (False, "debate"),
        (False, "consultancy"),
    }
    assert QuestionBank.objects.get(name=demo.DEMO_BANK).questions.count() == 2
    count = Debate.objects.count()
    assert demo.seed() == []
    assert Debate.objects.count() == count


def test_the_import_commands_report_bad_files(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{}")
    (tmp_path / ROOMS[0].name).write_bytes(ROOMS[0].read_bytes())
    with pytest.raises(Exception, match="1 files or lines were not imported"):
        call_command("import_debates", str(tmp_path))
    out = capsys.readouterr()
    assert "imported 1 debates (1 created, 0 updated); 1 failed" in out.out
    assert "bad.json: not the NYU schema" in out.err

    bank = tmp_path / "bank.jsonl"
    bank.write_text('{"passage": "p", "question": "q", "options": ["a", "b"], "gold_index": 1}\n')
    call_command("import_question_bank", "cmd bank", str(bank))
    assert QuestionBank.objects.get(name="cmd bank").questions.count() == 1
