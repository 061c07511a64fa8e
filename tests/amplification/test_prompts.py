"""The example bank's choice, the copy guard, and the prompts built from a tree's templates."""

import pytest

from amplification.models import DEFAULT_DECOMPOSE_PROMPT, Tree
from amplification.prompts import (
    EXAMPLE_BANK,
    EXAMPLES_SHOWN,
    answer_prompt,
    compose_prompt,
    content_words,
    decompose_prompt,
    decomposition_check,
    examples_chosen,
)

FIRST_TEMPLATE = (
    "Split a question into at most {max_children} simpler sub-questions.\n\n"
    "Question: How do plants make food?\nSub-questions:\n1. What is photosynthesis?\n"
    "2. What does a plant need for photosynthesis?\n3. Which part of the plant does it?\n\n"
    "{context}Question: {question}\nSub-questions:"
)


def test_the_bank_spans_several_domains():
    assert len({example.domain for example in EXAMPLE_BANK}) >= 6
    assert not any("photosynthesis" in example.question.casefold() for example in EXAMPLE_BANK)


@pytest.mark.parametrize("example", EXAMPLE_BANK, ids=lambda e: e.domain)
def test_a_question_never_gets_its_own_example(example):
    for attempt in range(len(EXAMPLE_BANK)):
        for asked in (example.question, example.question.upper().rstrip("?")):
            chosen = examples_chosen(asked, attempt=attempt)
            assert example not in chosen


def test_the_examples_shown_are_the_least_like_the_question_one_per_domain_and_stable():
    question = "Why does bread dough rise in a warm kitchen?"
    chosen = examples_chosen(question)
    assert chosen == examples_chosen(question)  # a stable rule: the memo key depends on it
    assert len(chosen) == EXAMPLES_SHOWN
    assert len({example.domain for example in chosen}) == EXAMPLES_SHOWN
    cooking = next(example for example in EXAMPLE_BANK if example.domain == "cooking")
    assert cooking not in chosen  # it shares "bread" and "dough"
    asked = content_words(question)
    overlap = [len(asked & content_words(e.question + " ".join(e.subquestions))) for e in chosen]
    assert overlap == [0, 0]
    # The resample is shown other examples, so a seeded model does not write the same copy.
    assert not set(examples_chosen(question, attempt=1)) & set(chosen)


def test_content_words_skip_stop_words_case_and_plurals():
    assert content_words("What are the COSTS of a seawall?") == {"cost", "seawall"}


def test_the_guard_drops_copies_of_examples_the_parent_siblings_and_repeats():
    raw = (
        "1. What is photosynthesis?\n"  # an example's, as it was shown
        "2. what is PHOTOSYNTHESIS\n"  # the same words again
        "3. Why should a town build a seawall\n"  # the parent
        "4. Who pays for the seawall?\n"  # a sibling the node already has
        "5. How high do storm waves reach the town?\n"
        "6. How high, do storm waves reach the town?\n"  # a repeat of its own
        "7. What does a seawall cost?"
    )
    checked = decomposition_check(
        raw, parent_question="Why should a town build a seawall?",
        examples=("What is photosynthesis?", "Which part of the plant does it?"), limit=3,
        siblings=("Who pays for the seawall?",),
    )  # fmt: skip
    assert checked.kept == ["How high do storm waves reach the town?", "What does a seawall cost?"]
    assert checked.dropped == [
        "What is photosynthesis?",
        "Who pays for the seawall?",
    ]  # fmt: skip  (the parser already drops the parent and the repeats)
    assert checked.enough and not checked.needs_resample


def test_too_few_left_after_dropping_copies_asks_for_a_resample():
    examples = ("What is photosynthesis?", "What does a plant need for photosynthesis?")
    copied = "1. What is photosynthesis?\n2. What does a plant need for photosynthesis?"
    checked = decomposition_check(copied, parent_question="Q?", examples=examples, limit=3)
    assert checked.kept == [] and checked.needs_resample
    one_left = copied + "\n3. Who pays for it?"
    checked = decomposition_check(one_left, parent_question="Q?", examples=examples, limit=3)
    assert checked.kept == ["Who pays for it?"] and checked.needs_resample
    # A lone sub-question nothing was dropped from stands (one may be what was meant), and
    # with room for one only, one is enough.
    assert not decomposition_check(
        "1. A?", parent_question="Q?", examples=(), limit=3
    ).needs_resample
    assert not decomposition_check(one_left, parent_question="Q?", examples=examples,
                                   limit=1).needs_resample  # fmt: skip
    assert decomposition_check("NONE", parent_question="Q?", examples=(), limit=3).needs_resample


def test_the_decompose_prompt_shows_bank_examples_not_the_questions_own(db):
    tree = Tree(question="Why should a town build a seawall?", context="A storm report.")
    built = decompose_prompt(tree, tree.question)
    assert tree.decompose_prompt == DEFAULT_DECOMPOSE_PROMPT
    assert "photosynthesis" not in built.text
    assert built.text.endswith("Context:\nA storm report.\n\nQuestion: Why should a town build "
                               "a seawall?\nSub-questions:")  # fmt: skip
    shown = [sub for example in examples_chosen(tree.question) for sub in example.subquestions]
    assert list(built.example_subquestions) == shown
    assert all(sub in built.text for sub in shown)
    assert decompose_prompt(tree, tree.question, attempt=1).text != built.text


def test_a_template_with_its_own_worked_example_is_guarded_against_it(db):
    tree = Tree(question="Why did the French Revolution begin?", decompose_prompt=FIRST_TEMPLATE)
    built = decompose_prompt(tree, tree.question)
    assert "What is photosynthesis?" in built.example_subquestions
    assert "Which part of the plant does it?" in built.example_subquestions


def test_the_compose_prompt_ends_with_the_childrens_answers_short_and_numbered(db):
    tree = Tree(question="Q?", context="")
    long = "Storm waves reach four metres. " + "More detail. " * 40
    prompt = compose_prompt(tree, "Why build a seawall?", [("How high?", long), ("Cost?", "Ten.")])
    facts = prompt[prompt.index("Facts found so far:") :]
    assert "1. Storm waves reach four metres." in facts and "\n2. Ten.\n" in facts
    assert "How high?" not in prompt  # the answers alone: short
    assert len(facts) < 400
    # Nothing but the instruction sits between the answers and the answer slot.
    assert prompt.rstrip().endswith("using the facts above.")


def test_the_answer_prompt_carries_the_context(db):
    tree = Tree(question="Q?", context="  A passage.  ")
    assert answer_prompt(tree, "Who?") == (
        "Context:\nA passage.\n\nAnswer the question in one or two sentences.\n\nQuestion: Who?"
    )
