import uuid

import pytest

import llm.generation
from annotations.models import Assignment, Item, Label
from annotations.services import label_submit, queue_item_claim
from feedback.agreement import run_agreement
from feedback.labelling import labelling_run_execute
from feedback.models import AILabel, RunStatus
from feedback.services import constitution_version_add, labelling_run_start, model_annotator_save
from tests.feedback.fakes import AlwaysFirst, NamesNothing


@pytest.fixture
def always_a(monkeypatch):
    backend = AlwaysFirst()
    monkeypatch.setattr(llm.generation, "backend_for", lambda config: backend)
    return backend


def _run(model_annotator, user):
    run = labelling_run_start(annotator=model_annotator, user=user)
    labelling_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_always_a_gives_one_half_on_every_pair_and_full_order_disagreement(
    model_annotator, researcher, always_a
):
    run = _run(model_annotator, researcher)
    assert run.status == RunStatus.DONE, run.error
    assert run.items_done == run.items_total == 6
    assert run.method == "logprobs"
    labels = list(AILabel.objects.filter(run=run))
    assert len(labels) == 6 * 2  # items × principles
    assert {label.probability for label in labels} == {0.5}
    assert all(label.orders_disagree for label in labels)
    agreement = run_agreement(run)
    for row in agreement.rows:
        assert row.order_disagreement is not None
        assert (row.order_disagreement.k, row.order_disagreement.n) == (
            row.order_disagreement.n,
            6 * (2 if row.short == "All" else 1),
        )
        assert row.order_disagreement.value == 1.0
    # Both orders of every pair were asked, batched: fewer calls than chats.
    assert len(always_a.chats) == 6 * 2 * 2
    assert len(always_a.calls) < len(always_a.chats)


def test_each_call_to_the_model_asks_one_principle_so_its_prompts_share_the_principle(
    model_annotator, researcher, always_a
):
    # The backend runs a call's common prompt prefix once: with one principle a call, that
    # prefix runs up to the item instead of stopping at "Principle: ".
    run = _run(model_annotator, researcher)
    assert run.status == RunStatus.DONE, run.error
    principles = [p.text for p in run.version.principles.order_by("position")]
    assert always_a.calls == [6 * 2, 6 * 2], "6 items (one batch) × 2 orders, per principle"
    first, second = always_a.chats[:12], always_a.chats[12:]
    assert all(principles[0] in chat[-1]["content"] for chat in first)
    assert all(principles[1] in chat[-1]["content"] for chat in second)
    assert not any(principles[1] in chat[-1]["content"] for chat in first)
    # Labels are still stored item by item, each item's principles in order.
    stored = list(AILabel.objects.filter(run=run).values_list("item_id", "principle__position"))
    assert stored == sorted(stored)


def test_likert_items_are_asked_both_ways_up_and_their_order_disagreement_reported(
    model_config, constitution, researcher, annotator, always_a
):
    from feedback.models import ModelAnnotator
    from tests.annotations.factories import likert, likert_gold, make_queue

    queue = make_queue(name="ratings", kind="likert", members=[annotator],
                       items=likert(3) + likert_gold(1, 5))  # fmt: skip
    rater = model_annotator_save(
        annotator=ModelAnnotator(queue=queue, name="rater", model_config=model_config,
                                 constitution=constitution),
        user=researcher,
    )  # fmt: skip
    run = _run(rater, researcher)
    assert run.status == RunStatus.DONE, run.error
    labels = list(AILabel.objects.filter(run=run))
    assert len(labels) == 4 * 2
    # Always "1": 1 on the scale as written, 7 on the reversed one.
    assert all(label.orders_disagree for label in labels)
    assert [order["order"] for order in labels[0].orders] == ["up", "down"]
    assert {tuple(label.distribution) for label in labels} == {(0.5, 0, 0, 0, 0, 0, 0.5)}
    assert len(always_a.chats) == 4 * 2 * 2
    overall = run_agreement(run).rows[0]
    assert overall.order_disagreement is not None
    assert (overall.order_disagreement.k, overall.order_disagreement.n) == (8, 8)


def test_labels_keep_their_provenance(model_annotator, researcher, always_a):
    run = _run(model_annotator, researcher)
    label = AILabel.objects.filter(run=run).select_related("principle").first()
    assert label.principle.version == run.version
    assert [order["order"] for order in label.orders] == ["ab", "ba"]
    assert label.principle.text in label.orders[0]["prompt"]
    assert label.orders[0]["probabilities"] == [1.0, 0.0]
    assert run.model_snapshot["name"] == model_annotator.model_config.name


def test_a_reply_naming_no_option_is_recorded_as_such(model_annotator, researcher, monkeypatch):
    monkeypatch.setattr(llm.generation, "backend_for", lambda config: NamesNothing())
    run = _run(model_annotator, researcher)
    assert run.status == RunStatus.DONE
    assert run.method == "votes"
    labels = AILabel.objects.filter(run=run)
    assert all(label.value is None and label.probability is None for label in labels)
    overall = run_agreement(run).rows[0]
    assert overall.no_option == 6
    assert overall.labelled == 0


def _human_state(queue):
    return (
        list(Item.objects.filter(queue=queue).values_list("pk", "label_count", "complete")),
        list(Assignment.objects.filter(queue=queue).values_list("pk", "item_id", "outcome")),
        list(Label.objects.filter(queue=queue).values_list("pk", "item_id", "annotator_id")),
    )


def test_ai_labels_change_no_human_claim_nor_k(
    model_annotator, queue, researcher, annotator, annotator2, always_a
):
    lease = queue_item_claim(queue=queue, annotator=annotator)
    label_submit(assignment_id=lease.pk, annotator=annotator, value={"choice": "a"},
                 time_spent_ms=900, client_request_id=uuid.uuid4())  # fmt: skip
    held = queue_item_claim(queue=queue, annotator=annotator2)
    before = _human_state(queue)
    run = _run(model_annotator, researcher)
    assert run.status == RunStatus.DONE
    assert _human_state(queue) == before
    # People still get every item up to k = 2: the model took no one's place.
    label_submit(assignment_id=held.pk, annotator=annotator2, value={"choice": "b"},
                 time_spent_ms=900, client_request_id=uuid.uuid4())  # fmt: skip
    for person in (annotator, annotator2):
        while (lease := queue_item_claim(queue=queue, annotator=person)) is not None:
            label_submit(assignment_id=lease.pk, annotator=person, value={"choice": "a"},
                         time_spent_ms=900, client_request_id=uuid.uuid4())  # fmt: skip
    regular = Item.objects.filter(queue=queue, is_gold=False)
    assert set(regular.values_list("label_count", flat=True)) == {2}
    assert all(regular.values_list("complete", flat=True))


def test_with_the_option_the_models_label_is_one_of_k(
    model_annotator,
    queue,
    researcher,
    annotator,
    annotator2,
    always_a,
    django_capture_on_commit_callbacks,
):
    model_annotator.counts_toward_k = True
    model_annotator_save(annotator=model_annotator, user=researcher)
    lease = queue_item_claim(queue=queue, annotator=annotator)
    first = lease.item_id
    label_submit(assignment_id=lease.pk, annotator=annotator, value={"choice": "a"},
                 time_spent_ms=900, client_request_id=uuid.uuid4())  # fmt: skip
    run = _run(model_annotator, researcher)
    assert run.status == RunStatus.DONE
    # The item one person labelled is finished: the model's label was the second of k = 2,
    # so the second person (who would have been given it first) never is.
    assert Item.objects.get(pk=first).complete
    assert Item.objects.get(pk=first).label_count == 1
    for person in (annotator, annotator2):
        while (lease := queue_item_claim(queue=queue, annotator=person)) is not None:
            assert lease.item_id != first
            with django_capture_on_commit_callbacks(execute=True):
                label_submit(assignment_id=lease.pk, annotator=person,
                             value=lease.item.gold_value or {"choice": "a"},
                             time_spent_ms=900, client_request_id=uuid.uuid4())  # fmt: skip
    regular = Item.objects.filter(queue=queue, is_gold=False)
    # Every regular item took one human label, not two; gold is never finished.
    assert set(regular.values_list("label_count", flat=True)) == {1}
    assert all(regular.values_list("complete", flat=True))
    assert not Item.objects.filter(queue=queue, is_gold=True, complete=True).exists()


def test_a_reply_naming_no_option_counts_toward_no_k(
    model_annotator, queue, researcher, annotator, monkeypatch
):
    monkeypatch.setattr(llm.generation, "backend_for", lambda config: NamesNothing())
    model_annotator.counts_toward_k = True
    model_annotator_save(annotator=model_annotator, user=researcher)
    lease = queue_item_claim(queue=queue, annotator=annotator)
    label_submit(assignment_id=lease.pk, annotator=annotator, value={"choice": "a"},
                 time_spent_ms=900, client_request_id=uuid.uuid4())  # fmt: skip
    before = _human_state(queue)
    _run(model_annotator, researcher)
    assert _human_state(queue) == before


def test_a_second_delivery_finds_nothing_to_claim(model_annotator, researcher, always_a):
    run = _run(model_annotator, researcher)
    labelling_run_execute(run_id=run.pk)
    assert AILabel.objects.filter(run=run).count() == 12


def test_exports_say_each_labels_source_and_can_leave_ai_labels_out(
    model_annotator, queue, researcher, annotator, always_a
):
    from tests.annotations.factories import export, jsonl

    lease = queue_item_claim(queue=queue, annotator=annotator)
    label_submit(assignment_id=lease.pk, annotator=annotator, value={"choice": "a"},
                 time_spent_ms=900, client_request_id=uuid.uuid4())  # fmt: skip
    run = _run(model_annotator, researcher)
    without = jsonl(export(queue))
    assert len(without) == 1 and "source" not in without[0]
    rows = jsonl(export(queue, include_ai_labels=True))
    human = [row for row in rows if row["source"] == "human"]
    model = [row for row in rows if row["source"] == "model"]
    assert len(human) == 1 and human[0]["provenance"] is None
    assert len(model) == 4 * 2  # regular items × principles (gold left out)
    assert model[0]["annotator"] == "model:judge-bot"
    assert model[0]["label"] == "tie"
    provenance = model[0]["provenance"]
    assert provenance["run"] == run.pk
    assert provenance["constitution_version"] == 1
    assert provenance["probability"] == 0.5
    assert provenance["principle"] == "Prefer the more helpful response."
    assert provenance["model_config"]["name"] == model_annotator.model_config.name
    with_gold = jsonl(export(queue, include_ai_labels=True, include_gold=True))
    assert len([row for row in with_gold if row["source"] == "model"]) == 6 * 2
    csv_text = export(queue, include_ai_labels=True, format="csv").decode()
    assert csv_text.splitlines()[0].count("source,provenance") == 1


def test_a_run_under_a_new_constitution_version_adds_labels_and_keeps_the_old_ones(
    model_annotator, researcher, always_a
):
    first = _run(model_annotator, researcher)
    kept = {(label.pk, label.principle_id, label.probability)
            for label in AILabel.objects.filter(run=first)}  # fmt: skip
    assert len(kept) == 6 * 2
    version = constitution_version_add(
        constitution=model_annotator.constitution,
        principles=["Prefer the response that answers the question that was asked."],
        user=researcher,
    )
    second = _run(model_annotator, researcher)
    assert second.status == RunStatus.DONE, second.error
    assert (first.version.number, second.version.number) == (1, 2) and second.version == version
    # The old run's labels are untouched; the new run adds one a (item, new principle).
    assert {(label.pk, label.principle_id, label.probability)
            for label in AILabel.objects.filter(run=first)} == kept  # fmt: skip
    added = AILabel.objects.filter(run=second).select_related("principle")
    assert added.count() == 6 and {label.principle.version_id for label in added} == {version.pk}
    assert AILabel.objects.count() == 6 * 2 + 6
