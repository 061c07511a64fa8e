"""Labels → pairs, the held-out split, the gate's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from annotations.kinds import LikertPayload
from annotations.services import NewItem
from rewards.data import is_heldout, training_data
from rewards.training import calibration, gate, sign_test_p
from tests.annotations.factories import make_queue
from tests.rewards.factories import add_items, label_all, preference_items, preference_queue


def _choices_queue(annotator, choices):
    queue = preference_queue(members=[annotator])
    answers = add_items(queue, preference_items(len(choices)))
    # Answer item i with choices[i] ("good" = the careful side).
    order = iter(choices)

    def pick(external_id):
        choice = next(order)
        good = answers[external_id]
        return (
            good
            if choice == "good"
            else ("b" if good == "a" else "a")
            if choice == "bad"
            else choice
        )

    fixed = {key: pick(key) for key in answers}
    label_all(queue, annotator, fixed)
    return queue


def test_pairwise_labels_become_pairs_and_ties_give_none(db, annotator):
    queue = _choices_queue(annotator, ["good", "bad", "tie", "both_bad", "good"])
    data = training_data(queue_ids=[queue.pk], heldout_percent=5)
    pairs = data.train + data.heldout
    assert len(data.label_ids) == 5  # every label read, pairs or not
    assert len(pairs) == 3
    chosen_kind = [
        "Happy" in p.chosen or "Great" in p.chosen or "Thanks" in p.chosen for p in pairs
    ]
    assert chosen_kind.count(True) == 2 and chosen_kind.count(False) == 1
    assert all(p.prompt.startswith("Explain ") for p in pairs)


def test_likert_ratings_pair_within_a_prompt(db, annotator):
    items = [
        NewItem(payload=LikertPayload(prompt="P1", text=text))
        for text in ("great", "okay", "bad", "also okay")
    ] + [NewItem(payload=LikertPayload(prompt="P2", text="alone"))]
    queue = make_queue(members=[annotator], kind="likert", items=items, labels_per_item=1)
    ratings = {"great": 7, "okay": 4, "bad": 1, "also okay": 4, "alone": 5}
    import uuid

    from annotations.services import label_submit, queue_item_claim

    while (lease := queue_item_claim(queue=queue, annotator=annotator)) is not None:
        label_submit(assignment_id=lease.pk, annotator=annotator,
                     value={"rating": ratings[lease.item.payload["text"]]},
                     time_spent_ms=5, client_request_id=uuid.uuid4())  # fmt: skip
    data = training_data(queue_ids=[queue.pk], heldout_percent=5)
    pairs = {(p.chosen, p.rejected) for p in data.train + data.heldout}
    # Within P1 only; the two 4s make no pair with each other; P2 alone makes none.
    assert pairs == {
        ("great", "okay"), ("great", "bad"), ("great", "also okay"),
        ("okay", "bad"), ("also okay", "bad"),
    }  # fmt: skip
    groups = {p.group for p in data.train + data.heldout}
    assert len(groups) == 1  # one prompt: one side of the split


def test_the_split_is_by_group_deterministic_and_only_grows():
    groups = [f"item:{i}" for i in range(2000)]
    held = {g for g in groups if is_heldout(g, 20)}
    assert 300 < len(held) < 500
    assert held == {g for g in groups if is_heldout(g, 20)}
    # More labels never move a held-out group into training.
    more = [f"item:{i}" for i in range(4000)]
    assert held <= {g for g in more if is_heldout(g, 20)}


def test_the_gate_compares_on_the_same_pairs_with_a_margin():
    baseline = np.array([0.9] * 8 + [0.2] * 2)  # 80 %
    better = np.array([0.9] * 9 + [0.2])
    worse = np.array([0.9] * 6 + [0.2] * 4)
    assert gate(better, baseline, 0.0)[0]
    promote, reason, fields = gate(worse, baseline, 0.0)
    assert not promote and "60.0% against 80.0%" in reason
    assert fields["losses"] == 2 and fields["wins"] == 0
    assert gate(worse, baseline, 0.2)[0]  # within a 20-point margin
    assert gate(worse, None, 0.0)[0]  # nothing active yet: any version that evaluates


def test_sign_test_and_calibration():
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(0, 5) == pytest.approx(1 / 32)
    bins, ece = calibration(np.array([0.95, 0.95, 0.55]))
    assert sum(b.count for b in bins) == 6
    assert 0 <= ece <= 1
