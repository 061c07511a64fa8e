import os

import pytest

from annotations.kinds import item_kind
from feedback.prompts import (
    COMPARISON_DEFAULT,
    RATING_DEFAULT,
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


def test_a_rating_combines_the_scale_both_ways_up():
    up = (0.0, 0.1, 0.0, 0.6, 0.3, 0.0, 0.0)
    # Reversed scale: 5 there is 3 here, 4 is 4, 3 is 5.
    down = (0.0, 0.0, 0.2, 0.6, 0.2, 0.0, 0.0)
    reading = rating_reading(up, down)
    assert reading.value == {"rating": 4}
    assert reading.probability == pytest.approx(0.6)
    assert reading.distribution == pytest.approx([0.0, 0.05, 0.1, 0.6, 0.25, 0.0, 0.0])
    assert reading.orders_disagree is False
    assert rating_reading(None, down).value is None and rating_reading(up, None).value is None


def test_a_model_that_always_answers_1_splits_1_and_7_and_its_orders_disagree():
    always_one = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    reading = rating_reading(always_one, always_one)
    assert reading.distribution == [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]
    assert reading.probability == 0.5
    assert reading.orders_disagree is True


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


def test_a_likert_item_is_asked_on_the_scale_both_ways_up():
    kind = item_kind("likert")
    up, down = orders_for(kind, kind_shape(kind), kind_shape(kind).default,
                          {"text": "<b>hi</b>", "prompt": ""}, "Short")  # fmt: skip
    assert (up.name, down.name) == ("up", "down")
    assert "Text: <b>hi</b>" in up.text and "Text: <b>hi</b>" in down.text
    assert "from 1 (not at all) to 7 (fully)" in up.text
    assert "from 1 (fully) to 7 (not at all)" in down.text


def test_a_rating_prompt_must_name_its_scale():
    with pytest.raises(PromptInvalid, match=r"must name \$scale"):
        template_check("Rate $item by $principle, 1 to 7.", kind_shape(item_kind("likert")))


def test_a_debate_is_judged_with_its_transcript_the_debaters_renamed_when_swapped():
    kind = item_kind("debate_judgment")
    payload = {
        "question": "Who wrote it?", "answer_a": "Ann", "answer_b": "Bob",
        "turns": [{"speaker": "Debater A", "text": "Ann, says page 3."},
                  {"speaker": "Debater B", "text": "Bob, says page 9."},
                  {"speaker": "Judge", "text": "Quote it."}],
    }  # fmt: skip
    first, second = orders_for(kind, kind_shape(kind), COMPARISON_DEFAULT, payload, "Honest")
    assert "Debate transcript:" in first.text
    assert "Debater A: Ann, says page 3." in first.text
    assert "Debater B: Bob, says page 9." in first.text
    assert "Debater A: Bob, says page 9." in second.text
    assert "Debater B: Ann, says page 3." in second.text
    assert "Judge: Quote it." in second.text
    assert second.text.index("Response A: Bob") < second.text.index("Response B: Ann")
    # A plain pair has no transcript and no empty heading.
    pairwise = item_kind("pairwise")
    plain = {"prompt": "Q", "response_a": "x", "response_b": "y", "system": ""}
    (ab, _) = orders_for(pairwise, kind_shape(pairwise), COMPARISON_DEFAULT, plain, "Honest")
    assert "transcript" not in ab.text and "Prompt: Q\n\nResponse A: x" in ab.text


PRINCIPLE = "Prefer the response that answers the question that was asked."
# Two items whose prompts differ from their first word.
PAIRS = [
    {"prompt": "Why is the sky blue?", "response_a": "Scattering.", "response_b": "The sea.",
     "system": ""},
    {"prompt": "How long should I boil an egg?", "response_a": "Six minutes.",
     "response_b": "Eggs are protein.", "system": ""},
]  # fmt: skip


def _comparison_texts() -> list[str]:
    kind = item_kind("pairwise")
    return [
        order.text
        for payload in PAIRS
        for order in orders_for(kind, kind_shape(kind), COMPARISON_DEFAULT, payload, PRINCIPLE)
    ]


def test_items_under_one_principle_share_the_instruction_question_and_principle():
    # A labelling run asks one principle's items in one call, whose common prefix the backend
    # runs once: all but the item and a short cue must come before the item.
    texts = _comparison_texts()
    shared = os.path.commonprefix(texts)
    assert shared.endswith(f"Principle: {PRINCIPLE}\n\nPrompt: ")
    assert "which response follows the principle better?" in shared
    assert "Answer with one letter: A or B." in shared
    # After the second response only the cue, so the letter is the reply's first token.
    assert texts[0].endswith("Response B: The sea.\n\nAnswer: A or B")
    assert texts[1].endswith("Response B: Scattering.\n\nAnswer: A or B")


def test_ratings_under_one_principle_share_all_but_the_item_and_the_scale():
    kind = item_kind("likert")
    texts = [
        order.text
        for payload in ({"text": "Paris is in France.", "prompt": ""},
                        {"text": "Canberra is in Australia.", "prompt": ""})
        for order in orders_for(kind, kind_shape(kind), RATING_DEFAULT, payload, PRINCIPLE)
    ]  # fmt: skip
    assert os.path.commonprefix(texts).endswith(f"Principle: {PRINCIPLE}\n\nText: ")
    assert "how well does it follow the principle?" in texts[0]
    assert texts[0].endswith("Paris is in France.\n\nRating from 1 (not at all) to 7 (fully):")
    assert texts[1].endswith("Paris is in France.\n\nRating from 1 (fully) to 7 (not at all):")


def test_the_backend_runs_the_instruction_question_and_principle_once_for_all_rows():
    # Through the bundled model's own tokenizer and chat template (its weights stay unloaded):
    # the token prefix the backend shares runs through the principle up to the item.
    from django.conf import settings
    from transformers import AutoTokenizer

    from llm.backends.bundled import bundled_checkpoint
    from llm.backends.transformers_backend import TransformersBackend, _shared_prefix_length

    backend = TransformersBackend.__new__(TransformersBackend)
    backend.tokenizer = AutoTokenizer.from_pretrained(
        str(bundled_checkpoint(settings.LLM_MODELS_DIR)), local_files_only=True
    )
    prompts = [backend.encode_prompt([{"role": "user", "content": t}]) for t in _comparison_texts()]
    shared = _shared_prefix_length(prompts)
    head = backend.tokenizer.decode(prompts[0][:shared])
    assert head.endswith(f"Principle: {PRINCIPLE}\n\nPrompt:")
    assert "which response follows the principle better?" in head
    # Each row pays for its item, the cue and the template's turn change, after which the
    # reply's first token is the letter.
    assert backend.tokenizer.decode(prompts[0]).endswith(
        "Response B: The sea.\n\nAnswer: A or B<|im_end|>\n<|im_start|>assistant\n"
    )
