import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from annotations import hot_sql
from annotations.kinds import LikertPayload, RatingValue
from annotations.markdown import markdown_html
from annotations.models import Assignment, Item, Label, Outcome, Priority
from annotations.selectors import Progress, annotator_progress
from annotations.services import (
    AlreadyLabelled,
    Held,
    ItemFull,
    LeaseGone,
    NewItem,
    NotAMember,
    NothingToUndo,
    assignment_release,
    assignment_skip,
    item_scores_set,
    label_submit,
    label_undo,
    queue_item_claim,
    queue_item_prefetch,
    queue_items_create,
    queue_members_set,
)
from tests.annotations.factories import likert, make_queue, pairwise, pairwise_gold

A = {"choice": "a"}


def submit(assignment, annotator, value=None, request_id=None, **kwargs):
    label, _ = label_submit(
        assignment_id=assignment.pk,
        annotator=annotator,
        value=A if value is None else value,
        time_spent_ms=kwargs.pop("time_spent_ms", 1200),
        client_request_id=request_id or uuid.uuid4(),
        **kwargs,
    )
    return label


def label_everything(queue, annotator):
    labelled = []
    while (lease := queue_item_claim(queue=queue, annotator=annotator)) is not None:
        submit(lease, annotator)
        labelled.append(lease.item.external_id)
    return labelled


# --- claiming ---------------------------------------------------------------------------------
def test_claim_gives_items_in_fifo_order_and_keeps_one_lease(annotator):
    queue = make_queue(members=[annotator], items=pairwise(3))
    first = queue_item_claim(queue=queue, annotator=annotator)
    assert first.item.external_id == "0"
    # Asking again (a reload, a double click) returns the same lease, not a second one.
    again = queue_item_claim(queue=queue, annotator=annotator)
    assert again.pk == first.pk
    assert Assignment.objects.filter(annotator=annotator, outcome=Outcome.OPEN).count() == 1
    assert label_everything(queue, annotator) == ["0", "1", "2"]
    assert queue_item_claim(queue=queue, annotator=annotator) is None


def test_an_item_with_k_labels_plus_leases_is_not_offered(annotator, annotator2, researcher):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(2), labels_per_item=1)
    mine = queue_item_claim(queue=queue, annotator=annotator)
    theirs = queue_item_claim(queue=queue, annotator=annotator2)
    # Item 0 is leased to annotator1 and k = 1, so annotator2 gets item 1.
    assert (mine.item.external_id, theirs.item.external_id) == ("0", "1")


def test_expired_lease_frees_the_item(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(1), labels_per_item=1)
    start = timezone.now()
    mine = queue_item_claim(queue=queue, annotator=annotator, now=start)
    assert queue_item_claim(queue=queue, annotator=annotator2, now=start) is None
    later = start + timedelta(minutes=10, seconds=1)
    theirs = queue_item_claim(queue=queue, annotator=annotator2, now=later)
    assert theirs.item_id == mine.item_id
    # The late first annotator's own claim closes their expired lease and finds nothing left.
    assert queue_item_claim(queue=queue, annotator=annotator, now=later) is None
    assert Assignment.objects.get(pk=mine.pk).outcome == Outcome.EXPIRED


def test_the_default_lease_is_ten_minutes(annotator):
    queue = make_queue(members=[annotator], items=pairwise(1))
    lease = queue_item_claim(queue=queue, annotator=annotator)
    assert lease.expires_at - lease.created_at == timedelta(minutes=10)


def test_non_members_cannot_claim(annotator, annotator2):
    queue = make_queue(members=[annotator], items=pairwise(1))
    with pytest.raises(NotAMember):
        queue_item_claim(queue=queue, annotator=annotator2)
    assert not Assignment.objects.exists()


def test_removing_a_member_releases_their_lease(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(1), labels_per_item=1)
    lease = queue_item_claim(queue=queue, annotator=annotator)
    queue_members_set(queue=queue, users=[annotator2])
    assert Assignment.objects.get(pk=lease.pk).outcome == Outcome.RELEASED
    assert queue_item_claim(queue=queue, annotator=annotator2).item_id == lease.item_id


# --- the next item held ahead (the labelling page) --------------------------------------------
def test_prefetch_holds_the_next_item_and_asking_again_keeps_both(annotator):
    queue = make_queue(members=[annotator], items=pairwise(3))
    held = queue_item_prefetch(queue=queue, annotator=annotator)
    assert (held.current.item.external_id, held.ahead.item.external_id) == ("0", "1")
    assert (held.current.ahead, held.ahead.ahead) == (False, True)
    again = queue_item_prefetch(queue=queue, annotator=annotator)
    assert (again.current.pk, again.ahead.pk) == (held.current.pk, held.ahead.pk)
    assert Assignment.objects.filter(outcome=Outcome.OPEN).count() == 2
    # The API's claim gives the current lease, never the one held ahead.
    assert queue_item_claim(queue=queue, annotator=annotator).pk == held.current.pk


def test_the_lease_ahead_becomes_current_with_its_time_starting_then(annotator):
    queue = make_queue(members=[annotator], items=pairwise(3))
    start = timezone.now()
    held = queue_item_prefetch(queue=queue, annotator=annotator, now=start)
    submit(held.current, annotator, now=start + timedelta(minutes=3))
    later = start + timedelta(minutes=3, seconds=1)
    after = queue_item_prefetch(queue=queue, annotator=annotator, now=later)
    assert after.current.pk == held.ahead.pk and not after.current.ahead
    assert Assignment.objects.get(pk=held.ahead.pk).expires_at == later + timedelta(minutes=10)
    assert after.ahead.item.external_id == "2"
    # At the end: the last item current, nothing ahead; then nothing at all.
    submit(after.current, annotator)
    last = queue_item_prefetch(queue=queue, annotator=annotator)
    assert (last.current.item.external_id, last.ahead) == ("2", None)
    submit(last.current, annotator)
    assert queue_item_prefetch(queue=queue, annotator=annotator) == Held(None, None)


def test_a_lease_ahead_counts_against_k(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(3), labels_per_item=1)
    queue_item_prefetch(queue=queue, annotator=annotator)  # holds items 0 and 1
    theirs = queue_item_prefetch(queue=queue, annotator=annotator2)
    assert (theirs.current.item.external_id, theirs.ahead) == ("2", None)


def test_the_lease_ahead_is_never_the_current_items_nor_one_already_labelled(annotator):
    queue = make_queue(members=[annotator], items=pairwise(2), labels_per_item=3)
    held = queue_item_prefetch(queue=queue, annotator=annotator)
    assert held.ahead.item_id != held.current.item_id
    submit(held.current, annotator)
    after = queue_item_prefetch(queue=queue, annotator=annotator)
    assert after.current.pk == held.ahead.pk and after.ahead is None  # item 0 is labelled


def test_gold_comes_at_the_queues_rate_with_the_lease_ahead(annotator):
    queue = make_queue(members=[annotator], items=pairwise(8) + pairwise_gold(3), gold_rate=0.25)
    seen = []
    held = queue_item_prefetch(queue=queue, annotator=annotator)
    while held.current is not None:
        seen.append(held.current.item.is_gold)
        submit(held.current, annotator)
        held = queue_item_prefetch(queue=queue, annotator=annotator)
    # The 4th, 8th and 12th labels are gold, as without prefetching (floor(n * 0.25) steps).
    assert [n for n, gold in enumerate(seen, start=1) if gold] == [4, 8]
    assert len(seen) == 10  # 8 regular items and 2 gold; the third gold was due at 12


def test_a_lease_ahead_starts_when_it_becomes_current_not_when_it_was_claimed(annotator):
    # An experiment counts time per item and its time limit from the lease's start: an item
    # held ahead while the annotator read the one before must not carry that time.
    queue = make_queue(members=[annotator], items=pairwise(3))
    claimed_at = timezone.now() - timedelta(seconds=40)
    held = queue_item_prefetch(queue=queue, annotator=annotator, now=claimed_at)
    submit(held.current, annotator, now=claimed_at + timedelta(seconds=30))
    promoted_at = claimed_at + timedelta(seconds=31)
    now_held = queue_item_prefetch(queue=queue, annotator=annotator, now=promoted_at)
    assert now_held.current.pk == held.ahead.pk
    assert now_held.current.created_at == promoted_at
    assert Assignment.objects.get(pk=held.ahead.pk).created_at == promoted_at


def test_a_fresh_page_renews_the_lease_ahead_and_the_old_pages_release_misses_it(annotator):
    queue = make_queue(members=[annotator], items=pairwise(3))
    old = queue_item_prefetch(queue=queue, annotator=annotator)
    fresh = queue_item_prefetch(queue=queue, annotator=annotator, renew_ahead=True)
    assert fresh.current.pk == old.current.pk  # the item on screen stays theirs
    assert fresh.ahead.item_id == old.ahead.item_id and fresh.ahead.pk != old.ahead.pk
    # The old page's beacon arrives after the new page loaded: it names a lease gone already.
    with pytest.raises(LeaseGone):
        assignment_release(assignment_id=old.ahead.pk, annotator=annotator)
    assert Assignment.objects.get(pk=fresh.ahead.pk).outcome == Outcome.OPEN


def test_release_gives_back_only_a_lease_ahead_and_only_ones_own(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(3), labels_per_item=1)
    held = queue_item_prefetch(queue=queue, annotator=annotator)
    with pytest.raises(LeaseGone):
        assignment_release(assignment_id=held.ahead.pk, annotator=annotator2)
    with pytest.raises(LeaseGone):  # the item on screen is not given back by a closing page
        assignment_release(assignment_id=held.current.pk, annotator=annotator)
    with pytest.raises(LeaseGone):
        assignment_release(assignment_id=held.ahead.pk, annotator=annotator, queue_id=0)
    assignment_release(assignment_id=held.ahead.pk, annotator=annotator)
    assert Assignment.objects.get(pk=held.ahead.pk).outcome == Outcome.RELEASED
    # Released, its item is back in the queue at once.
    assert queue_item_claim(queue=queue, annotator=annotator2).item_id == held.ahead.item_id


def test_a_lease_ahead_nobody_gives_back_returns_when_it_times_out(annotator, annotator2):
    # The page went away without a word (a crash, a phone killing the tab): the backstop.
    queue = make_queue(members=[annotator, annotator2], items=pairwise(2), labels_per_item=1)
    start = timezone.now()
    held = queue_item_prefetch(queue=queue, annotator=annotator, now=start)
    assert queue_item_claim(queue=queue, annotator=annotator2, now=start) is None
    later = start + timedelta(minutes=10, seconds=1)
    theirs = queue_item_prefetch(queue=queue, annotator=annotator2, now=later)
    assert {theirs.current.item_id, theirs.ahead.item_id} == {
        held.current.item_id,
        held.ahead.item_id,
    }
    # The first annotator comes back: both their leases are closed as expired, nothing left.
    assert queue_item_prefetch(queue=queue, annotator=annotator, now=later) == Held(None, None)
    assert set(
        Assignment.objects.filter(annotator=annotator).values_list("outcome", flat=True)
    ) == {Outcome.EXPIRED}
    assert not Label.objects.exists()


def test_skipping_the_current_item_makes_the_one_ahead_current(annotator):
    queue = make_queue(members=[annotator], items=pairwise(3))
    held = queue_item_prefetch(queue=queue, annotator=annotator)
    assignment_skip(assignment_id=held.current.pk, annotator=annotator)
    after = queue_item_prefetch(queue=queue, annotator=annotator)
    assert after.current.pk == held.ahead.pk and after.ahead.item.external_id == "2"


def test_undo_releases_the_lease_ahead_too(annotator):
    queue = make_queue(members=[annotator], items=pairwise(3))
    held = queue_item_prefetch(queue=queue, annotator=annotator)
    submit(held.current, annotator)
    after = queue_item_prefetch(queue=queue, annotator=annotator)
    back = label_undo(queue=queue, annotator=annotator)
    assert back.item_id == held.current.item_id
    assert Assignment.objects.get(pk=after.current.pk).outcome == Outcome.RELEASED
    assert Assignment.objects.get(pk=after.ahead.pk).outcome == Outcome.RELEASED
    again = queue_item_prefetch(queue=queue, annotator=annotator)
    assert again.current.pk == back.pk and again.ahead.item_id == held.ahead.item_id


def test_removing_a_member_releases_their_lease_ahead(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(2), labels_per_item=1)
    held = queue_item_prefetch(queue=queue, annotator=annotator)
    queue_members_set(queue=queue, users=[annotator2])
    assert Assignment.objects.get(pk=held.ahead.pk).outcome == Outcome.RELEASED


def test_random_priority_follows_the_random_key(annotator):
    queue = make_queue(members=[annotator], items=pairwise(20), priority=Priority.RANDOM)
    expected = list(
        Item.objects.filter(queue=queue)
        .order_by("random_key")
        .values_list("external_id", flat=True)
    )
    assert label_everything(queue, annotator) == expected
    assert expected != sorted(expected, key=int)  # 1 in 20! chance of a false alarm


def test_uncertainty_priority_highest_first_then_fifo_for_unscored(annotator):
    queue = make_queue(members=[annotator], items=pairwise(4), priority=Priority.UNCERTAINTY)
    ids = {item.external_id: item.pk for item in Item.objects.filter(queue=queue)}
    assert item_scores_set(scores={ids["2"]: 0.9, ids["3"]: 0.1}) == 2
    assert label_everything(queue, annotator) == ["2", "3", "0", "1"]


def test_item_scores_refuse_nan(annotator):
    queue = make_queue(members=[annotator], items=pairwise(1))
    item = Item.objects.get(queue=queue)
    with pytest.raises(ValidationError):
        item_scores_set(scores={item.pk: float("nan")})
    item.refresh_from_db()
    assert item.uncertainty is None


def test_skipped_items_are_not_offered_again(annotator):
    queue = make_queue(members=[annotator], items=pairwise(2))
    lease = queue_item_claim(queue=queue, annotator=annotator)
    assignment_skip(assignment_id=lease.pk, annotator=annotator)
    assert queue_item_claim(queue=queue, annotator=annotator).item.external_id == "1"
    with pytest.raises(LeaseGone):
        assignment_skip(assignment_id=lease.pk, annotator=annotator)


def claim_external_id(queue, annotator, **kwargs):
    lease = queue_item_claim(queue=queue, annotator=annotator, **kwargs)
    return lease.item.external_id if lease is not None else None


def test_skipped_items_come_back_at_the_end_in_the_order_of_the_last_skip(annotator):
    queue = make_queue(members=[annotator], items=pairwise(4), labels_per_item=1)
    for expected in ("0", "1"):
        lease = queue_item_claim(queue=queue, annotator=annotator)
        assert lease.item.external_id == expected
        assignment_skip(assignment_id=lease.pk, annotator=annotator)
    # Revisiting only starts once nothing else is left: items 2 and 3 come first.
    for expected in ("2", "3"):
        assert claim_external_id(queue, annotator, revisit_skipped=True) == expected
        submit(Assignment.objects.get(annotator=annotator, outcome=Outcome.OPEN), annotator)
    assert claim_external_id(queue, annotator) is None  # not without asking
    first = queue_item_claim(queue=queue, annotator=annotator, revisit_skipped=True)
    assert first.item.external_id == "0"
    assignment_skip(assignment_id=first.pk, annotator=annotator)  # skipped again: goes last
    assert claim_external_id(queue, annotator, revisit_skipped=True) == "1"
    submit(Assignment.objects.get(annotator=annotator, outcome=Outcome.OPEN), annotator)
    assert claim_external_id(queue, annotator, revisit_skipped=True) == "0"
    submit(Assignment.objects.get(annotator=annotator, outcome=Outcome.OPEN), annotator)
    assert claim_external_id(queue, annotator, revisit_skipped=True) is None


def test_a_skipped_item_labelled_by_others_up_to_k_does_not_come_back(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(1), labels_per_item=1)
    lease = queue_item_claim(queue=queue, annotator=annotator)
    assignment_skip(assignment_id=lease.pk, annotator=annotator)
    submit(queue_item_claim(queue=queue, annotator=annotator2), annotator2)
    assert claim_external_id(queue, annotator, revisit_skipped=True) is None
    assert annotator_progress(queue, annotator) == Progress(
        done=0, left=0, skipped=0, can_undo=False
    )


def test_progress_counts_what_this_annotator_can_still_get(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(5), labels_per_item=1)
    start = timezone.now()
    assert annotator_progress(queue, annotator).left == 5
    # The other annotator labels two items: with k = 1 those are not ours to get.
    for _ in range(2):
        submit(queue_item_claim(queue=queue, annotator=annotator2, now=start), annotator2)
    submit(queue_item_claim(queue=queue, annotator=annotator, now=start), annotator, now=start)
    lease = queue_item_claim(queue=queue, annotator=annotator, now=start)
    assignment_skip(assignment_id=lease.pk, annotator=annotator)
    assert annotator_progress(queue, annotator, now=start) == Progress(
        done=1, left=1, skipped=1, can_undo=True
    )
    later = start + timedelta(seconds=61)
    assert not annotator_progress(queue, annotator, now=later).can_undo
    assert annotator_progress(queue, annotator2, now=later) == Progress(
        done=2, left=2, skipped=0, can_undo=False
    )


def test_everything_labelled_by_others_leaves_nothing_for_you(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(3), labels_per_item=1)
    while (lease := queue_item_claim(queue=queue, annotator=annotator2)) is not None:
        submit(lease, annotator2)
    progress = annotator_progress(queue, annotator)
    assert (progress.left, progress.done, progress.skipped) == (0, 0, 0)


@pytest.mark.postgres
def test_a_fresh_queue_is_claimed_by_walking_its_order_not_by_sorting_it(annotator):
    # A claim that sorted the whole queue probed every item's labels and leases: 10-15 ms on a
    # fresh 2,000-item queue (bench/queues.py), when the table had no statistics yet.
    queue = make_queue(members=[annotator], items=pairwise(2000))
    pick = hot_sql.pick_prepared_form(Priority.FIFO)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE fresh_pick (bigint, integer, timestamptz, integer) AS {pick}")
        cursor.execute(f"EXPLAIN EXECUTE fresh_pick ({queue.pk}, {annotator.pk}, now(), 3)")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE fresh_pick")
    assert "Sort" not in plan and "Index Scan using item_fifo" in plan, plan


# --- labels -----------------------------------------------------------------------------------
def test_submit_stores_the_label_and_closes_the_lease(annotator):
    queue = make_queue(members=[annotator], items=pairwise(1), labels_per_item=1)
    lease = queue_item_claim(queue=queue, annotator=annotator)
    label = submit(lease, annotator, {"choice": "tie"}, time_spent_ms=3456)
    assert (label.value, label.time_spent_ms) == ({"choice": "tie"}, 3456)
    assert Assignment.objects.get(pk=lease.pk).outcome == Outcome.LABELLED
    item = Item.objects.get(pk=lease.item_id)
    assert (item.label_count, item.complete) == (1, True)


def test_a_retried_submit_stores_one_label(annotator):
    queue = make_queue(members=[annotator], items=pairwise(2))
    lease = queue_item_claim(queue=queue, annotator=annotator)
    request_id = uuid.uuid4()
    first = submit(lease, annotator, request_id=request_id)
    second = submit(lease, annotator, request_id=request_id)
    assert first.pk == second.pk
    assert Label.objects.count() == 1
    assert Item.objects.get(pk=lease.item_id).label_count == 1


def test_a_request_id_reused_for_another_item_is_refused(annotator):
    queue = make_queue(members=[annotator], items=pairwise(2))
    request_id = uuid.uuid4()
    submit(queue_item_claim(queue=queue, annotator=annotator), annotator, request_id=request_id)
    lease = queue_item_claim(queue=queue, annotator=annotator)
    with pytest.raises(Exception, match="already used for another item"):
        submit(lease, annotator, request_id=request_id)
    assert Label.objects.count() == 1


@pytest.mark.parametrize(
    "value", [{"choice": "c"}, {"choice": 1}, {}, {"choice": "a", "x": 1}, {"rating": 3}]
)
def test_a_value_the_kind_does_not_allow_is_refused_and_changes_nothing(annotator, value):
    queue = make_queue(members=[annotator], items=pairwise(1))
    lease = queue_item_claim(queue=queue, annotator=annotator)
    with pytest.raises(ValidationError, match="Not a pairwise label"):
        submit(lease, annotator, value)
    assert not Label.objects.exists()
    assert Assignment.objects.get(pk=lease.pk).outcome == Outcome.OPEN


def test_likert_takes_ratings_one_to_seven(annotator):
    queue = make_queue(members=[annotator], items=likert(2), kind="likert")
    submit(queue_item_claim(queue=queue, annotator=annotator), annotator, {"rating": 7})
    with pytest.raises(ValidationError):
        submit(queue_item_claim(queue=queue, annotator=annotator), annotator, {"rating": 8})


def test_a_k_plus_first_label_is_refused(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(1), labels_per_item=1)
    start = timezone.now()
    stale = queue_item_claim(queue=queue, annotator=annotator, now=start)
    later = start + timedelta(minutes=11)
    fresh = queue_item_claim(queue=queue, annotator=annotator2, now=later)
    submit(fresh, annotator2, now=later)
    # annotator1 comes back to their expired (still open) lease: the item is full.
    with pytest.raises(ItemFull):
        submit(stale, annotator, now=later)
    assert Item.objects.get().label_count == 1
    assert Label.objects.count() == 1


def test_a_second_label_by_the_same_annotator_is_refused(annotator):
    queue = make_queue(members=[annotator], items=pairwise(1))
    lease = queue_item_claim(queue=queue, annotator=annotator)
    submit(lease, annotator)
    # A lease on an item they labelled can only come from outside the claim path.
    sneaky = Assignment.objects.create(
        queue=queue,
        item=lease.item,
        annotator=annotator,
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    with pytest.raises(AlreadyLabelled):
        submit(sneaky, annotator)
    assert Label.objects.count() == 1


def test_submitting_on_a_lease_that_is_not_yours_is_refused(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(1))
    lease = queue_item_claim(queue=queue, annotator=annotator)
    with pytest.raises(LeaseGone):
        submit(lease, annotator2)
    assert not Label.objects.exists()


def test_submitting_on_a_closed_lease_is_refused(annotator):
    queue = make_queue(members=[annotator], items=pairwise(2))
    lease = queue_item_claim(queue=queue, annotator=annotator)
    assignment_skip(assignment_id=lease.pk, annotator=annotator)
    with pytest.raises(LeaseGone):
        submit(lease, annotator)


def test_undo_within_sixty_seconds_gives_the_item_back(annotator):
    queue = make_queue(members=[annotator], items=pairwise(3), labels_per_item=1)
    start = timezone.now()
    first = queue_item_claim(queue=queue, annotator=annotator, now=start)
    submit(first, annotator, now=start)
    current = queue_item_claim(queue=queue, annotator=annotator, now=start)
    back = label_undo(queue=queue, annotator=annotator, now=start + timedelta(seconds=59))
    assert back.item_id == first.item_id
    assert not Label.objects.exists()
    assert Item.objects.get(pk=first.item_id).label_count == 0
    assert Assignment.objects.get(pk=current.pk).outcome == Outcome.RELEASED
    # The released item is free again, and the relabel goes through.
    assert queue_item_claim(queue=queue, annotator=annotator, now=start).pk == back.pk
    submit(back, annotator, {"choice": "b"}, now=start)
    assert Label.objects.get().value == {"choice": "b"}


def test_undo_after_sixty_seconds_is_refused(annotator):
    queue = make_queue(members=[annotator], items=pairwise(2))
    start = timezone.now()
    submit(queue_item_claim(queue=queue, annotator=annotator, now=start), annotator, now=start)
    with pytest.raises(NothingToUndo):
        label_undo(queue=queue, annotator=annotator, now=start + timedelta(seconds=61))
    assert Label.objects.count() == 1


def test_undo_with_no_labels_is_refused(annotator):
    queue = make_queue(members=[annotator], items=pairwise(1))
    with pytest.raises(NothingToUndo):
        label_undo(queue=queue, annotator=annotator)


# --- gold -------------------------------------------------------------------------------------
def test_gold_items_come_at_the_set_rate_and_are_scored(annotator, annotator2):
    queue = make_queue(
        members=[annotator, annotator2],
        items=pairwise(6) + pairwise_gold(3, "a"),
        gold_rate=0.25,
        labels_per_item=1,
    )
    sequence = []
    while (lease := queue_item_claim(queue=queue, annotator=annotator)) is not None:
        sequence.append(lease.item.is_gold)
        submit(lease, annotator, {"choice": "b"} if lease.item.external_id == "g-1" else A)
    # Every 4th label is gold while gold lasts; the queue's 6 real items all come.
    assert sequence[:8] == [False, False, False, True, False, False, False, True]
    assert sequence.count(False) == 6
    gold = Label.objects.filter(is_gold=True).order_by("item__external_id")
    assert [label.gold_correct for label in gold] == [True, False]


def test_gold_items_are_shown_to_every_annotator_whatever_k(annotator, annotator2):
    queue = make_queue(
        members=[annotator, annotator2],
        items=pairwise(6) + pairwise_gold(1),
        gold_rate=0.25,
        labels_per_item=1,
    )
    leases = {annotator: 0, annotator2: 0}
    while True:
        progressed = False
        for who in leases:
            lease = queue_item_claim(queue=queue, annotator=who)
            if lease is not None:
                submit(lease, who)
                progressed = True
        if not progressed:
            break
    assert Label.objects.filter(item__external_id="g-0").count() == 2
    assert Label.objects.filter(is_gold=False).count() == 6  # k = 1 still holds for real items


# --- items ------------------------------------------------------------------------------------
def test_items_of_the_wrong_kind_are_refused_whole(annotator):
    queue = make_queue(members=[annotator])
    mixed = pairwise(2) + [NewItem(payload=LikertPayload(text="x"))]
    with pytest.raises(ValidationError, match="item 3: a pairwise queue takes PairwisePayload"):
        queue_items_create(queue=queue, items=mixed)
    with pytest.raises(ValidationError, match="gold value must be a ChoiceValue"):
        queue_items_create(
            queue=queue, items=[NewItem(payload=pairwise(1)[0].payload, gold=RatingValue(rating=1))]
        )
    assert not Item.objects.exists()
    queue.refresh_from_db()
    assert queue.item_count == 0


def test_item_count_counts_real_items_only(annotator):
    queue = make_queue(members=[annotator], items=pairwise(4) + pairwise_gold(2))
    assert queue.item_count == 4


def test_counters_match_the_label_rows(annotator, annotator2):
    queue = make_queue(members=[annotator, annotator2], items=pairwise(3), labels_per_item=2)
    label_everything(queue, annotator)
    label_everything(queue, annotator2)
    counts = dict(Label.objects.values_list("item").annotate(n=Count("*")))
    for item in Item.objects.all():
        assert item.label_count == counts[item.pk] == 2
        assert item.complete


# --- instructions -----------------------------------------------------------------------------
def test_instructions_render_markdown_without_script():
    html = markdown_html(
        "# Rules\n\nPick **A** <script>alert(1)</script> [x](javascript:alert(1))"
        " <img src=x onerror=alert(1)>"
    )
    assert "<h1>Rules</h1>" in html
    assert "<strong>A</strong>" in html
    assert "<script>" not in html
    assert 'href="javascript' not in html
    assert "<img" not in html
