import pytest

from annotations.kinds import item_kind
from feedback.prompts import (
    COMPARISON_DEFAULT,
    PromptInvalid,
    comparison_reading,
    kind_shape,
    orders_for,
    rating_reading,
    template_check,
)


def test_a_model_that_always_answers_a_gets_one_half_and_its_orders_disagree():
    reading = comparison_reading((1.0, 0.0), (1.0, 0.0))
    assert reading.probability == 0.5
    assert reading.value == {"choice": "tie"}
    assert reading.orders_disagree is True


def test_a_consistent_preference_survives_the_swap():
    # A asked first: 0.9 for A; swapped (stored A now second): 0.8 for "B", i.e. stored A.
    reading = comparison_reading((0.9, 0.1), (0.2, 0.8))
    assert reading.probability == pytest.approx(0.85)
    assert reading.value == {"choice": "a"}
    assert reading.orders_disagree is False


def test_an_order_that_named_no_option_is_recorded_as_such_never_as_one_half():
    reading = comparison_reading((0.7, 0.3), None)
    assert reading.value is None
    assert reading.probability is None


def test_rating_reading_takes_the_most_probable_rating():
    reading = rating_reading((0.0, 0.1, 0.0, 0.6, 0.3, 0.0, 0.0))
    assert reading.value == {"rating": 4}
    assert reading.probability == pytest.approx(0.6)
    assert rating_reading(None).value is None


def test_both_orders_swap_the_responses():
    kind = item_kind("pairwise")
    payload = {"prompt": "Q", "response_a": "first", "response_b": "second", "system": ""}
    first, second = orders_for(kind, kind_shape(kind), COMPARISON_DEFAULT, payload, "Be kind")
    assert first.text.index("first") < first.text.index("second")
    assert second.text.index("second") < second.text.index("first")
    assert "Be kind" in first.text


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Rate $response_a", "must name $principle"),
        ("$principle $secret", "unknown field secret"),
        ("$principle costs 5$", "stray $"),
        ("${principle.__class__}", "stray $"),
    ],
)
def test_a_template_naming_anything_else_is_refused(template, message):
    with pytest.raises(PromptInvalid, match=message.replace("$", r"\$")):
        template_check(template, kind_shape(item_kind("pairwise")))


def test_a_likert_item_is_asked_once_with_its_fields():
    kind = item_kind("likert")
    (order,) = orders_for(kind, kind_shape(kind), kind_shape(kind).default,
                          {"text": "<b>hi</b>", "prompt": ""}, "Short")  # fmt: skip
    assert "Text: <b>hi</b>" in order.text
