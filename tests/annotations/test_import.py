import json

import pytest
from django.core.management import CommandError, call_command

from annotations.importers import (
    MAX_IMPORT_BYTES,
    ImportFailed,
    ImportFormat,
    items_import,
)
from annotations.kinds import PairwisePayload
from annotations.models import Item
from annotations.services import DuplicateExternalId, NewItem, queue_items_create
from tests.annotations.factories import make_queue

GOOD = {"prompt": "p", "response_a": "a", "response_b": "b"}


def jsonl(*rows) -> bytes:
    return "\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows).encode()


@pytest.fixture
def queue(db):
    return make_queue()


def test_jsonl_import_stores_every_row(queue):
    data = jsonl(
        GOOD,
        "",
        {"payload": GOOD | {"system": "be brief"}, "external_id": "x1"},
        GOOD | {"gold": "b"},
    )
    assert items_import(queue=queue, data=data, fmt=ImportFormat.JSONL) == 3
    items = list(Item.objects.order_by("id"))
    assert items[1].payload["system"] == "be brief" and items[1].external_id == "x1"
    assert (items[2].is_gold, items[2].gold_value) == (True, {"choice": "b"})
    queue.refresh_from_db()
    assert queue.item_count == 2


def test_csv_import_with_gold_and_blank_optional_cells(queue):
    data = (
        b"prompt,response_a,response_b,system,gold,external_id\r\n"
        b'p,a,b,,,e1\r\n"multi\nline",a,b,sys,tie,e2\r\n'
    )
    assert items_import(queue=queue, data=data, fmt=ImportFormat.CSV) == 2
    second = Item.objects.get(external_id="e2")
    assert second.payload == {
        "prompt": "multi\nline",
        "response_a": "a",
        "response_b": "b",
        "system": "sys",
    }
    assert second.gold_value == {"choice": "tie"}


def test_likert_gold_from_csv_text(db):
    queue = make_queue(kind="likert")
    items_import(queue=queue, data=b"text,gold\nhello,5\n", fmt=ImportFormat.CSV)
    assert Item.objects.get().gold_value == {"rating": 5}


def test_each_bad_row_is_named_by_line_and_nothing_is_stored(queue):
    data = jsonl(
        GOOD,
        "{not json",
        GOOD | {"response_b": 7},
        {"prompt": "p"},
        GOOD | {"gold": "c"},
        GOOD | {"extra": 1},
        "[1, 2]",
        GOOD | {"response_a": "x" * 50_001},
        GOOD,
    )
    with pytest.raises(ImportFailed) as failure:
        items_import(queue=queue, data=data, fmt=ImportFormat.JSONL)
    lines = failure.value.messages
    assert lines[0].startswith("line 2: not valid JSON")
    assert lines[1] == "line 3: response_b: Input should be a valid string"
    assert lines[2].startswith("line 4: response_a: Field required; response_b: Field required")
    assert lines[3].startswith(
        "line 5: gold: choice: Input should be 'a', 'b', 'tie' or 'both_bad'"
    )
    assert lines[4] == "line 6: extra: Extra inputs are not permitted"
    assert lines[5] == "line 7: expected a JSON object"
    assert lines[6].startswith("line 8: response_a: String should have at most 50000 characters")
    assert len(lines) == 7
    assert not Item.objects.exists()


def test_csv_errors_carry_the_physical_line(queue):
    data = b'prompt,response_a,response_b\n"two\nlines",a,b\np,a\np,a,b,extra\n'
    with pytest.raises(ImportFailed) as failure:
        items_import(queue=queue, data=data, fmt=ImportFormat.CSV)
    assert failure.value.messages == [
        "line 4: response_b: Field required",
        "line 5: more cells than the header has columns",
    ]
    assert not Item.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "line 0: the file has no rows"),
        (b"\xff\xfe{}", "line 1: not UTF-8 text"),
        (b" " * (MAX_IMPORT_BYTES + 1), "the limit is 20,971,520"),
    ],
)
def test_empty_binary_and_oversize_files_are_refused(queue, data, message):
    with pytest.raises(ImportFailed, match=message):
        items_import(queue=queue, data=data, fmt=ImportFormat.JSONL)


def test_too_many_problems_are_cut_short(queue):
    data = jsonl(*(["{bad"] * 80))
    with pytest.raises(ImportFailed) as failure:
        items_import(queue=queue, data=data, fmt=ImportFormat.JSONL)
    assert len(failure.value.errors) == 50
    assert failure.value.messages[-1] == "(only the first 50 problems are listed)"


def test_management_command_imports_and_reports_errors(queue, tmp_path, capsys):
    good = tmp_path / "items.jsonl"
    good.write_bytes(jsonl(GOOD, GOOD))
    call_command("import_items", queue.name, str(good))
    assert "Imported 2 items" in capsys.readouterr().out
    bad = tmp_path / "items.csv"
    bad.write_text("prompt,response_a\np,a\n")
    with pytest.raises(CommandError, match="line 2: response_b: Field required"):
        call_command("import_items", str(queue.pk), str(bad))
    with pytest.raises(CommandError, match="No queue named"):
        call_command("import_items", "nope", str(good))
    with pytest.raises(CommandError, match="Pass --format"):
        call_command("import_items", queue.name, str(tmp_path / "items.txt"))
    assert Item.objects.count() == 2


def test_an_external_id_names_one_item_of_a_queue(queue):
    row = {"prompt": "p", "response_a": "a", "response_b": "b"}
    items_import(queue=queue, data=jsonl(row | {"external_id": "x1"}), fmt=ImportFormat.JSONL)
    with pytest.raises(ImportFailed) as failed:
        items_import(
            queue=queue,
            data=jsonl(row | {"external_id": "x2"}, row, row | {"external_id": "x2"},
                       row | {"external_id": "x1"}),
            fmt=ImportFormat.JSONL,
        )  # fmt: skip
    assert failed.value.messages == [
        "line 3: external_id 'x2' repeats line 1",
        "line 4: external_id 'x1' is already in this queue",
    ]
    assert Item.objects.filter(queue=queue).count() == 1


def test_the_service_refuses_or_skips_a_repeated_external_id(queue):
    new = NewItem(payload=PairwisePayload(prompt="p", response_a="a", response_b="b"),
                  external_id="once")  # fmt: skip
    assert queue_items_create(queue=queue, items=[new]) == 1
    with pytest.raises(DuplicateExternalId, match="external id once"):
        queue_items_create(queue=queue, items=[new])
    assert queue_items_create(queue=queue, items=[new], skip_existing=True) == 0
    queue.refresh_from_db()
    assert Item.objects.filter(queue=queue).count() == queue.item_count == 1
