import json

import pytest

from amplification.models import Author, Mode, Node, Resolution, Tree
from amplification.prompts import answer_prompt
from amplification.selectors import (
    DistillMode,
    distillation_preview,
    distillation_rows,
    distillation_set,
    text_diff,
    tree_export,
)
from amplification.services import tree_import, tree_nodes_to_queue
from annotations.models import Item, Label, Queue


def _shown(before: str, after: str) -> str:
    """The diff as a reader sees it: ~~deleted~~, [inserted]."""
    marks = {"same": "{}", "del": "~~{}~~", "ins": "[{}]"}
    return "".join(marks[s.op].format(s.text) for s in text_diff(before, after))


def test_the_version_diff_works_by_whole_words():
    # Not "~~A~~Sea ~~plant~~levels": the shared space does not split a changed phrase.
    assert _shown("A plant", "Sea levels") == "~~A plant~~[Sea levels]"
    assert _shown("A plant grows", "Sea levels grows") == "~~A plant~~[Sea levels ]grows"
    assert _shown("the big cat", "the cat") == "the ~~big ~~cat"
    assert _shown("the cat", "the big cat") == "the [big ]cat"
    assert _shown("", "Hello world.") == "[Hello world.]"
    assert _shown("planting trees", "plants trees") == "~~planting~~[plants ]trees"


def test_the_diff_keeps_every_character_of_both_texts():
    before, after = "  Sea levels rise\nslowly.", "Sea  levels fall\n quickly."
    segments = text_diff(before, after)
    kept = "".join(s.text for s in segments if s.op != "del")
    assert kept == after
    assert "".join(s.text for s in segments if s.op != "ins").split() == before.split()


# --- the distillation set ---------------------------------------------------------------


def _completions(**filters):
    return sorted(row.completion for row in distillation_set(**filters))


@pytest.mark.django_db
def test_each_rows_prompt_is_what_the_answerer_saw_context_included(fake, make_tree):
    fake.decompositions = {"Root?": "1. A?\n2. B?"}
    tree = make_tree(max_depth=1, context="A storm report.",
                     answer_prompt="{context}Say it briefly.\nQuestion: {question}")  # fmt: skip
    rows = {row.completion: row for row in distillation_set()}
    leaf = tree.nodes.get(question="A?")
    assert rows["answer to A?"].prompt == leaf.calls[0]["prompt"] == answer_prompt(tree, "A?")
    assert (
        rows["answer to A?"].prompt == "Context:\nA storm report.\n\nSay it briefly.\nQuestion: A?"
    )
    # The root was composed: its row asks the answerer's question, and teaches the amplified
    # answer as the direct one.
    assert rows["composed: Root?"].prompt == answer_prompt(tree, "Root?")
    assert [json.loads(line)["prompt"] for line in distillation_rows(
        tree_ids=[tree.pk], min_rating=None)][0] == answer_prompt(tree, "Root?")  # fmt: skip


@pytest.mark.django_db
def test_imported_copies_and_repeated_sub_questions_count_once(fake, make_tree, researcher):
    fake.decompositions = {"Root?": "1. Shared question?\n2. B?\n3. shared  QUESTION"}
    tree = make_tree(max_depth=1)
    # The parser already keeps one of the two spellings; a person adds the other by hand.
    assert tree.nodes.count() == 3
    Node.objects.create(tree=tree, parent=tree.nodes.get(parent=None), depth=1, position=5,
                        question="shared, question", answer="another answer", status="done",
                        resolution=Resolution.HUMAN, answered_by=Author.PERSON)  # fmt: skip
    assert _completions() == ["answer to B?", "answer to Shared question?", "composed: Root?"]
    tree_import(data=tree_export(tree), created_by=researcher)
    assert len(list(distillation_set())) == 3
    other = make_tree("Other root?", max_depth=1)  # another tree, no sub-questions
    assert _completions(tree_ids=[other.pk]) == ["answer to Other root?"]
    assert len(list(distillation_set())) == 4


@pytest.mark.django_db
def test_filters_tree_mode_and_rating(fake, make_tree, annotator):
    fake.decompositions = {"Root?": "1. A?\n2. B?", "Augmented?": "1. C?\n2. D?"}
    machine = make_tree(max_depth=1)
    augmented = make_tree("Augmented?", max_depth=1)
    Tree.objects.filter(pk=augmented.pk).update(mode=Mode.AUGMENTED)  # finished as one
    assert _completions(tree_ids=[machine.pk]) == ["answer to A?", "answer to B?",
                                                   "composed: Root?"]  # fmt: skip
    assert _completions(mode=DistillMode.AUGMENTED) == ["answer to C?", "answer to D?",
                                                        "composed: Augmented?"]  # fmt: skip
    assert len(_completions(mode=DistillMode.MACHINE)) == 3
    assert _completions(mode=DistillMode.PERSON) == []
    Node.objects.filter(tree=augmented, question="C?").update(
        answer="a person's answer", answered_by=Author.PERSON, resolution=Resolution.HUMAN
    )
    assert _completions(mode=DistillMode.PERSON) == ["a person's answer"]
    queue = Queue.objects.create(name="tree nodes", kind="tree_node_rating")
    tree_nodes_to_queue(tree_id=machine.pk, queue=queue, aspect="answer")
    for question, rating in (("A?", 2), ("B?", 6)):
        item = Item.objects.get(external_id=f"tree-node-{machine.nodes.get(question=question).pk}")
        Label.objects.create(
            queue=queue, item=item, annotator=annotator, value={"rating": rating},
            time_spent_ms=1, client_request_id=f"00000000-0000-0000-0000-00000000000{rating}",
        )  # fmt: skip
    assert "answer to A?" not in _completions(min_rating=4)
    assert "composed: Root?" in _completions(min_rating=4)  # nobody rated it: kept
    assert _completions(rated_only=True) == ["answer to A?", "answer to B?"]
    assert _completions(rated_only=True, min_rating=4) == ["answer to B?"]
    assert _completions(tree_ids=[Tree.objects.order_by("pk").last().pk + 1]) == []


@pytest.mark.django_db
def test_the_preview_counts_every_row_and_shows_the_first(fake, make_tree):
    fake.decompositions = {"Root?": "1. A?\n2. B?"}
    make_tree(max_depth=1)
    preview = distillation_preview(first=2)
    assert preview.count == 3
    assert preview.rows == list(distillation_set())[:2]
