import pytest

from amplification.parsing import decomposition_parse, prompt_render, question_key


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1. What is A?\n2. What is B?\n3. What is C?", ["What is A?", "What is B?", "What is C?"]),
        (
            "Sure! Here are some:\n- What is A?\n* What is B?\n\nHope this helps.",
            ["What is A?", "What is B?"],
        ),
        ("1) What is A? 2) What is B?", ["What is A?", "What is B?"]),
        ("Sub-question 1: What is A?\nSub-question 2: What is B?", ["What is A?", "What is B?"]),
        ("**1. What is A?**\n2. What is a?", ["What is A?"]),  # duplicates drop
        ("What is A?\nSome prose.\nWhat is B?", ["What is A?", "What is B?"]),
        ("NONE", []),
        ("This question is simple.", []),
        ("1.\n2. ?\n3. Root question?", []),  # empty items and a copy of the parent drop
        ("1. A?\n2. B?\n3. C?\n4. D?", ["A?", "B?"]),  # the limit
    ],
)
def test_decompositions_parse_from_what_small_models_write(raw, expected):
    limit = 2 if "D?" in raw else 3
    assert decomposition_parse(raw, parent_question="Root question", limit=limit) == expected


def test_no_room_means_no_sub_questions():
    assert decomposition_parse("1. A?", parent_question="Root", limit=0) == []


def test_question_keys_ignore_case_spacing_and_trailing_punctuation():
    assert question_key("What is  the Sky?") == question_key("what is the sky")
    assert question_key("What is the sky?") != question_key("What is the sea?")


def test_prompts_fill_only_known_placeholders():
    assert prompt_render("{question} {other}", question="Q?") == "Q? {other}"


def test_a_prompt_renders_with_one_kind_of_line_ending():
    """A browser submits a textarea's lines ending in CRLF; the model is shown LF whatever
    the template was stored with (the bundled model wrote other text under CRLF)."""
    stored = "Split it.\r\n\r\n{context}Question: {question}\rSub-questions:"
    rendered = prompt_render(stored, question="Why?", context="Context:\r\nA seawall.\r\n\r\n")
    assert rendered == "Split it.\n\nContext:\nA seawall.\n\nQuestion: Why?\nSub-questions:"


def test_a_line_repeated_with_other_case_spacing_or_punctuation_is_kept_once():
    raw = "1. What is A?\n2. what  is a\n3. What is, A?\n4. WHAT IS A!\n5. What is B?"
    assert decomposition_parse(raw, parent_question="Root", limit=5) == ["What is A?", "What is B?"]


def test_the_model_inventing_the_next_worked_example_is_cut_off():
    raw = (
        "1. How high do storm waves reach?\n2. What does a seawall cost?\n\n"
        "Question: How do plants make food?\nSub-questions:\n1. What is photosynthesis?"
    )
    assert decomposition_parse(raw, parent_question="Root", limit=3) == [
        "How high do storm waves reach?", "What does a seawall cost?",
    ]  # fmt: skip
    # An echo of the slot before any item is no reason to stop.
    echoed = "Sub-questions:\n1. How high do storm waves reach?"
    assert decomposition_parse(echoed, parent_question="Root", limit=3) == [
        "How high do storm waves reach?"
    ]
