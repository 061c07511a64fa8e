"""Labels → pairs, the held-out split, the gate's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from annotations.kinds import LikertPayload
from annotations.services import NewItem
from rewards.data import heldout_target, labels_needed, split_assign, training_data
from rewards.models import RewardModel
from rewards.services import reward_model_save
from rewards.training import calibration, gate, sign_test_p
from tests.annotations.factories import make_queue
from tests.rewards.factories import add_items, label_all, preference_items, preference_queue


def _data(queue, percent=5):
    rm = reward_model_save(reward_model=RewardModel(name=f"rm {queue.pk}", heldout_percent=percent),
                           queues=[queue], user=None)  # fmt: skip
    return training_data(reward_model=rm)


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
    data = _data(queue)
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
    data = _data(queue)
    pairs = {(p.chosen, p.rejected) for p in data.train + data.heldout}
    # Within P1 only; the two 4s make no pair with each other; P2 alone makes none.
    assert pairs == {
        ("great", "okay"), ("great", "bad"), ("great", "also okay"),
        ("okay", "bad"), ("also okay", "bad"),
    }  # fmt: skip
    groups = {p.group for p in data.train + data.heldout}
    assert len(groups) == 1  # one prompt: one side of the split


def test_the_split_reaches_its_share_on_small_queues_and_only_grows():
    groups = [f"item:{i}" for i in range(60)]
    first = split_assign(sides={}, groups=groups[:36], percent=20)
    assert sum(first.values()) == heldout_target(36, 20) == 8  # ceil(7.2)
    # Deterministic by group: the same groups in another order get the same sides.
    assert split_assign(sides={}, groups=list(reversed(groups[:36])), percent=20) == first
    more = split_assign(sides=first, groups=groups, percent=20)
    assert set(more) == set(groups[36:])  # stored sides never move
    assert sum(first.values()) + sum(more.values()) == 12  # 20 % of 60, not 3
    # Small queues at every share reach it exactly.
    for percent in (5, 20, 30, 50):
        for n in (1, 7, 20, 59, 60):
            sides = split_assign(sides={}, groups=groups[:n], percent=percent)
            assert sum(sides.values()) == -(-percent * n // 100)
    # One group at a time (a run per label) reaches the same share.
    sides: dict[str, bool] = {}
    for group in groups:
        sides |= split_assign(sides=sides, groups=[*sides, group], percent=20)
    assert sum(sides.values()) == 12


def test_labels_needed_counts_one_pair_per_new_labelled_item():
    def needed(train=0, heldout=0, groups=0, heldout_groups=0, percent=20):
        return labels_needed(train=train, heldout=heldout, groups=groups,
                             heldout_groups=heldout_groups, percent=percent,
                             min_train=20, min_heldout=8)  # fmt: skip

    assert needed() == 36  # ceil(20 % of 36) = 8 held out, 28 to train
    assert needed(percent=50) == 40  # 20 to train, 20 held out
    assert needed(train=28, heldout=8, groups=36, heldout_groups=8) == 0
    # Held out already over its share (the old hash split): new items go to training.
    assert needed(train=5, heldout=9, groups=14, heldout_groups=9) == 15


def test_the_gate_compares_on_the_same_pairs_with_a_margin():
    baseline = np.array([0.9] * 8 + [0.2] * 2)  # 80 %
    better = np.array([0.9] * 9 + [0.2])
    worse = np.array([0.9] * 6 + [0.2] * 4)
    assert gate(better, baseline, 0.0)[0]
    promote, reason, fields = gate(worse, baseline, 0.0)
    assert not promote
    assert "60 % (6/10; 95 % CI 31–83 %, Wilson) against 80 % (8/10; 95 % CI 49–94 %" in reason
    assert fields["losses"] == 2 and fields["wins"] == 0
    assert (fields["heldout_correct"], fields["baseline_correct"]) == (6, 8)
    assert gate(worse, baseline, 0.2)[0]  # within a 20-point margin


def test_a_first_version_goes_live_only_if_it_beats_chance():
    # Nothing active: the Wilson interval's lower bound must be above 50 %.
    promote, reason, fields = gate(np.array([0.9] * 4 + [0.2] * 4), None, 0.0)  # chance
    assert not promote and fields["heldout_correct"] == 4
    assert reason.startswith("Not better than chance on its 8 held-out pairs: 50 % (4/8;")
    assert not gate(np.array([0.9] * 6 + [0.2] * 2), None, 0.0)[0]  # 75 %: 41–93 %
    assert gate(np.array([0.9] * 7 + [0.2]), None, 0.0)[0]  # 88 %: 53–98 %
    assert not gate(np.array([0.9] * 3), None, 0.0)[0]  # 3/3: 44–100 %


def test_sign_test_and_calibration():
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(0, 5) == pytest.approx(1 / 32)
    bins, ece = calibration(np.array([0.95, 0.95, 0.55]))
    assert sum(b.count for b in bins) == 6
    assert 0 <= ece <= 1
