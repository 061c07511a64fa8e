"""AI first: routing scores, and fewer human labels for confident items."""

from __future__ import annotations

import uuid

import pytest

import llm.generation
from annotations.models import Item
from annotations.services import label_submit, queue_item_claim
from feedback.labelling import labelling_run_execute
from feedback.routing import routing_scores, shortcut_report
from feedback.services import labelling_run_start
from tests.feedback.fakes import PicksByWord


@pytest.fixture
def run(model_annotator, researcher, monkeypatch):
    # Sure (0.9, both orders agree) on items 0 and 2 and the gold items; torn on 1 and 3.
    backend = PicksByWord(["answer A0", "answer A2", "good"])
    monkeypatch.setattr(llm.generation, "backend_for", lambda config: backend)
    started = labelling_run_start(annotator=model_annotator, user=researcher)
    labelling_run_execute(run_id=started.pk)
    started.refresh_from_db()
    return started


def _by_external(queue, scores):
    return {item.external_id: scores.get(item.pk) for item in Item.objects.filter(queue=queue)}


def test_people_see_first_where_the_model_is_unsure_or_torn(run, queue, annotator):
    scores = _by_external(queue, routing_scores(run))
    assert scores["1"] == scores["3"] == 1.0  # p = 0.5, orders disagree
    assert scores["0"] == scores["2"] == pytest.approx(0.2)  # 1 − |2·0.9 − 1|
    assert scores["g-0"] is None  # gold is not routed
    # A person disagreeing with the model puts the item first too.
    item = Item.objects.get(queue=queue, external_id="0")
    while (lease := queue_item_claim(queue=queue, annotator=annotator)) is not None:
        value = "b" if lease.item.pk == item.pk else "a"
        label_submit(assignment_id=lease.pk, annotator=annotator,
                     value=lease.item.gold_value or {"choice": value},
                     time_spent_ms=500, client_request_id=uuid.uuid4())  # fmt: skip
    assert _by_external(queue, routing_scores(run))["0"] == 1.0


def test_confident_items_finish_with_fewer_human_labels(
    run, queue, model_annotator, annotator, annotator2, django_capture_on_commit_callbacks
):
    model_annotator.shortcut_threshold = 0.85
    model_annotator.shortcut_labels = 1
    model_annotator.save()
    while (lease := queue_item_claim(queue=queue, annotator=annotator)) is not None:
        # The shortcut runs once each label commits (annotations.hooks).
        with django_capture_on_commit_callbacks(execute=True):
            label_submit(assignment_id=lease.pk, annotator=annotator,
                         value=lease.item.gold_value or {"choice": "a"},
                         time_spent_ms=500, client_request_id=uuid.uuid4())  # fmt: skip
    regular = {i.external_id: i for i in Item.objects.filter(queue=queue, is_gold=False)}
    assert regular["0"].complete and regular["2"].complete  # 1 label of k = 2 sufficed
    assert not regular["1"].complete and not regular["3"].complete
    seen = []
    while (lease := queue_item_claim(queue=queue, annotator=annotator2)) is not None:
        seen.append(lease.item.external_id)
        label_submit(assignment_id=lease.pk, annotator=annotator2,
                     value=lease.item.gold_value or {"choice": "a"},
                     time_spent_ms=500, client_request_id=uuid.uuid4())  # fmt: skip
    assert "0" not in seen and "2" not in seen and {"1", "3"} <= set(seen)
    report = shortcut_report(run)
    assert (report.items, report.finished, report.labels_saved) == (2, 2, 2)
    assert (report.gold.k, report.gold.n) == (2, 2)
