"""Where raters err, with simulated annotators labelling through the real claim and submit
services: one always picks A, one always picks the longer answer, one is careful."""

from __future__ import annotations

import random
import uuid
from typing import Literal

import pytest
from django.urls import reverse

from annotations.kinds import ChoiceValue, PairwisePayload
from annotations.rater_errors import Row, disagreement_regression, rater_errors, style_markers
from annotations.services import NewItem, label_submit, queue_item_claim
from tests.annotations.factories import make_queue
from tests.factories import UserFactory

SHORT = "Yes: the moon pulls the sea."
LONG = (
    "Well! Here is **everything**:\n- the moon pulls the sea\n- the sun pulls less\n"
    "- water piles up on the near and far sides, which is why there are two tides a day."
)
WRONG_SHORT = "No: the wind does it."
WRONG_LONG = (
    "Great question! It is **the wind**:\n- wind pushes water ashore\n- calm days "
    "have no tides at all, as every sailor knows from long experience at sea."
)


def _items(n: int, *, seed: int, gold: bool) -> list[NewItem]:
    """The right answer on a random side, long or short at random (length says nothing)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        right_long = rng.random() < 0.5
        right = LONG if right_long else SHORT
        wrong = WRONG_SHORT if right_long else WRONG_LONG
        side: Literal["a", "b"] = "a" if rng.random() < 0.5 else "b"
        a, b = (right, wrong) if side == "a" else (wrong, right)
        payload = PairwisePayload(prompt=f"Why tides? ({i})", response_a=a, response_b=b)
        ext = f"{'g' if gold else 'i'}{seed}-{i}"
        out.append(NewItem(payload=payload, external_id=ext,
                           gold=ChoiceValue(choice=side) if gold else None))  # fmt: skip
    return out


def _right_side(payload: dict) -> str:
    return "a" if payload["response_a"] in (SHORT, LONG) else "b"


PICKERS = {
    "always-a": lambda p: "a",
    "longer": lambda p: "a" if len(p["response_a"]) > len(p["response_b"]) else "b",
    "careful": _right_side,
}


@pytest.fixture
def labelled(db):
    users = {name: UserFactory(username=name) for name in PICKERS}
    items = _items(40, seed=1, gold=False) + _items(40, seed=2, gold=True)
    queue = make_queue(
        members=users.values(), kind="pairwise", labels_per_item=3, gold_rate=0.5, items=items
    )
    for name, pick in PICKERS.items():
        for _ in range(60):
            lease = queue_item_claim(queue=queue, annotator=users[name])
            if lease is None:
                break
            label_submit(assignment_id=lease.pk, annotator=users[name],
                         value={"choice": pick(lease.item.payload)}, time_spent_ms=4000,
                         client_request_id=uuid.uuid4())  # fmt: skip
    return queue


def test_always_a_shows_position_bias_and_the_longer_picker_length_bias(labelled):
    errors = rater_errors(labelled)
    assert errors.applicable and errors.gold_items > 10
    by = {b.who: b for b in errors.annotators}
    always_a = by["always-a"]
    assert always_a.position.value == 1.0 and always_a.position.n >= 40
    assert always_a.position.low > 0.5 and always_a.position_biased
    longer = by["longer"]
    assert longer.length.value == 1.0 and longer.length.n >= 5 and longer.length_biased
    assert not longer.position_biased  # the longer answer sits on a random side
    careful = by["careful"]
    assert careful.agreement.value == 1.0 and careful.length.n == 0
    assert not careful.position_biased
    # Everyone's position share is a Share over every a/b label.
    assert errors.overall is not None
    assert errors.overall.position.n == sum(b.position.n for b in errors.annotators)


def test_agreement_by_feature_regression_and_majority_wrong(labelled):
    errors = rater_errors(labelled)
    features = {b.feature for b in errors.bins}
    assert {"length difference", "position", "style markers", "time spent"} <= features
    on_a = next(b for b in errors.bins if b.label == "reference answer on A")
    on_b = next(b for b in errors.bins if b.label == "reference answer on B")
    # The always-A annotator is right on A items only: agreement differs by position.
    assert on_a.agreement.value > on_b.agreement.value
    regression = errors.regression
    assert regression is not None and regression.rows >= 20
    names = [c.name for c in regression.coefficients]
    assert names[0] == "intercept" and "reference answer on A" in names
    position = next(c for c in regression.coefficients if c.name == "reference answer on A")
    assert position.value < 0 and position.low <= position.value <= position.high
    assert "Fisher information" in regression.method
    # Gold items where the always-A and the longer picker were both wrong: the majority of 3.
    assert errors.majority_wrong
    assert all(m.wrong * 2 > m.labels for m in errors.majority_wrong)


def test_the_dashboard_shows_the_section_and_links_items(client, researcher, labelled):
    client.force_login(researcher)
    page = client.get(reverse("annotations:dashboard", args=[labelled.pk])).content.decode()
    assert 'id="rater-errors"' in page and "not 50 %" in page
    assert "Wilson" in page and "Fisher information" in page
    first = rater_errors(labelled).majority_wrong[0]
    assert f"?item={first.item_id}" in page


def test_queues_without_a_reference_or_a_comparison_say_why(db):
    likert = make_queue(kind="likert")
    assert not rater_errors(likert).applicable
    empty = make_queue(kind="pairwise")
    assert "No item has a reference" in rater_errors(empty).reason


def test_regression_needs_both_outcomes():
    rows = [Row(i, "x", "a", "a", 10, 20, 0, 0, 3.0) for i in range(30)]
    regression = disagreement_regression(rows)
    assert regression.coefficients == [] and "Needs" in regression.note


def test_style_markers_count_lists_bold_and_exclamations():
    assert style_markers(SHORT) == 0
    assert style_markers(LONG) == 3 + 2 + 1  # three bullets, ** twice, one "!"
