"""The whole loop with a real worker and beat: labels → fast training by itself → the gate →
the uncertainty queue's order → noisy labels → a rejected version, the active one unchanged."""

from __future__ import annotations

import pytest

from annotations.models import Item, Priority
from annotations.services import queue_item_claim
from rewards.data import split_assign
from rewards.models import RewardModel, RewardVersion, SplitGroup, Status, Trigger
from tests.helpers import wait_for
from tests.rewards.factories import (
    add_items,
    ambiguous_items,
    label_all,
    label_some,
    preference_items,
    preference_queue,
    reward_model_for,
)

pytestmark = [pytest.mark.worker]


def _finished(reward_model, number):
    version = RewardVersion.objects.filter(reward_model=reward_model, number=number).first()
    return version if version is not None and not version.running else None


def test_labels_train_a_model_that_orders_the_queue_and_noise_is_rejected(
    transactional_db, django_db_serialized_rollback, annotator, annotator2, start_worker
):
    queue = preference_queue(members=[annotator, annotator2], priority=Priority.UNCERTAINTY)
    answers = add_items(queue, preference_items(60, seed=1))
    answers |= add_items(queue, preference_items(12, seed=2, start=60))
    answers |= add_items(queue, ambiguous_items(4))
    reward_model = reward_model_for(queue, fast_every=60)
    # Before any model: no uncertainty, the queue serves in id order.
    first_before = Item.objects.filter(queue=queue, complete=False).order_by("id").first()
    start_worker(beat=True, REWARD_CHECK_SECONDS="1")

    assert label_all(queue, annotator, answers, limit=60) == 60
    # Nobody pressed anything: beat sees 60 new labels and starts a fast run.
    v1 = wait_for(lambda: _finished(reward_model, 1), timeout=240, what="version 1")
    assert v1.trigger == Trigger.LABELS and v1.speed == "fast"
    assert v1.status == Status.ACTIVE, v1.reason
    metrics = v1.typed_metrics
    assert metrics.heldout_accuracy > 0.8 and metrics.heldout_pairs >= 8
    assert v1.label_count == 60 and len(v1.label_ids) == 60
    reward_model.refresh_from_db()
    assert reward_model.active_version_id == v1.pk

    # The active version scores the open items; pairs nearest 50 % come first.
    open_items = Item.objects.filter(queue=queue, complete=False)
    wait_for(lambda: not open_items.filter(uncertainty__isnull=True).exists(), timeout=120,
             what="uncertainties on the open items")  # fmt: skip
    lease = queue_item_claim(queue=queue, annotator=annotator2)
    assert lease is not None
    assert lease.item.pk != first_before.pk
    assert lease.item.external_id.startswith("amb")
    clear = open_items.exclude(external_id__startswith="amb")
    assert max(clear.values_list("uncertainty", flat=True)) < lease.item.uncertainty
    from annotations.services import assignment_skip

    assignment_skip(assignment_id=lease.pk, annotator=annotator2)

    # A careless annotator picks the worse answer on every new item that will be trained on;
    # the held-out ones (as the stored split will assign them) get careful labels. Beat
    # waits (fast_every raised) until all are in, so the run splits exactly these.
    RewardModel.objects.filter(pk=reward_model.pk).update(fast_every=100_000)
    noisy = add_items(queue, preference_items(110, seed=3, start=200))
    answers |= noisy
    stored = dict(
        SplitGroup.objects.filter(reward_model=reward_model).values_list("group", "heldout")
    )
    assert sum(stored.values()) == 18  # 30 % of 60
    new_items = Item.objects.filter(queue=queue, external_id__in=list(noisy))
    will_hold = split_assign(
        sides=stored, groups=[*stored, *(f"item:{item.pk}" for item in new_items)],
        percent=reward_model.heldout_percent,
    )  # fmt: skip
    held_ids = {int(group.removeprefix("item:")) for group, held in will_hold.items() if held}
    assert len(held_ids) == 51 - 18  # the share of all 170 groups
    labelled = label_some(
        queue, annotator2, answers, take=lambda item: item.external_id in noisy,
        flip=lambda item: item.pk not in held_ids,
    )  # fmt: skip
    assert labelled == 110  # 77 flipped, 33 careful
    RewardModel.objects.filter(pk=reward_model.pk).update(fast_every=60)
    v2 = wait_for(lambda: _finished(reward_model, 2), timeout=240, what="version 2")
    assert v2.trigger == Trigger.LABELS
    assert v2.status == Status.REJECTED, v2.reason
    m2 = v2.typed_metrics
    assert m2.baseline_version == 1  # compared on the same (grown) held-out pairs
    assert (metrics.heldout_pairs, m2.heldout_pairs) == (18, 51)
    assert m2.heldout_accuracy < m2.baseline_accuracy
    assert "Less accurate than the active version" in v2.reason
    reward_model.refresh_from_db()
    assert reward_model.active_version_id == v1.pk
    v1.refresh_from_db()
    assert v1.status == Status.ACTIVE
