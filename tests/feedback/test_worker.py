"""A labelling run on a real Celery worker with the bundled SmolLM2 (log-probabilities of the
option tokens, one forward pass per order: never sampled)."""

from __future__ import annotations

import math

import pytest

from feedback.models import AILabel, LabellingRun, ModelAnnotator, RunStatus
from feedback.services import constitution_create, labelling_run_start, model_annotator_save
from tests.annotations.factories import make_queue, pairwise, pairwise_gold
from tests.factories import ModelConfigFactory
from tests.feedback.conftest import humans_label
from tests.helpers import signed_in, wait_for, worker_log

pytestmark = [pytest.mark.worker]
WAIT_S = 400


def test_a_run_on_the_bundled_model_finishes_and_the_dashboard_shows_agreement(
    transactional_db,
    django_db_serialized_rollback,
    celery_worker_process,
    researcher,
    annotator,
    annotator2,
):
    queue = make_queue(name="demo prefs", members=[annotator, annotator2],
                       items=pairwise(4) + pairwise_gold(2), labels_per_item=2)  # fmt: skip
    humans_label(queue, [annotator, annotator2], {"0": "a", "1": "b", "2": "a", "3": "b"})
    constitution = constitution_create(
        name="demo",
        principles=["Prefer the more helpful response.", "Prefer the shorter one."],
        user=researcher,
    )
    annotator_row = model_annotator_save(
        annotator=ModelAnnotator(queue=queue, name="smol", constitution=constitution,
                                 model_config=ModelConfigFactory(timeout_s=600)),
        user=researcher,
    )  # fmt: skip
    run = labelling_run_start(annotator=annotator_row, user=researcher)
    done = wait_for(
        lambda: LabellingRun.objects.filter(pk=run.pk, status__in=["done", "failed"]).first(),
        timeout=WAIT_S, what="the labelling run", log=worker_log("test-worker"),
    )  # fmt: skip
    assert done.status == RunStatus.DONE, done.error
    assert done.method == "logprobs"
    assert done.items_done == 6
    labels = list(AILabel.objects.filter(run=run))
    assert len(labels) == 6 * 2
    for label in labels:
        assert [order["order"] for order in label.orders] == ["ab", "ba"]
        for order in label.orders:
            assert order["method"] == "logprobs" and order["replies"] == []
            assert math.isclose(sum(order["probabilities"]), 1.0, abs_tol=1e-6)
        assert 0.0 <= label.probability <= 1.0
    page = signed_in(researcher).get(f"/queues/{queue.pk}/dashboard/").content.decode()
    assert 'data-principle="P1"' in page and 'data-principle="P2"' in page
    assert "vs human majority" in page and "percentile bootstrap" in page
    assert f"smol (run {run.pk})" in page
