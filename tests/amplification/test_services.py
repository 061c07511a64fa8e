import json

import pytest
from django.core.exceptions import ValidationError

from amplification.expansion import tree_expand
from amplification.models import Author, Mode, Node, NodeStatus, Resolution, Tree, TreeStatus
from amplification.schemas import TreeExport
from amplification.selectors import distillation_rows, tree_export
from amplification.services import (
    node_answer_by_person,
    node_child_add,
    node_decompose_by_person,
    node_edit,
    node_recompute,
    node_remove,
    node_rerun,
    node_take,
    tree_import,
    tree_nodes_to_queue,
    tree_release_all,
)
from annotations.models import Item, Label, Queue
from tests.amplification.conftest import three_by_three

pytestmark = pytest.mark.django_db


def _versions(tree):
    return {node.pk: node.version for node in tree.nodes.all()}


def _run(tree):
    tree_expand(tree_id=tree.pk)
    tree.refresh_from_db()


def test_editing_one_leaf_answer_recomposes_exactly_its_ancestors(fake, make_tree, researcher):
    fake.decompositions = three_by_three()
    tree = make_tree()
    before = _versions(tree)
    fake.reset()
    leaf = tree.nodes.get(question="B2?")
    node_edit(tree_id=tree.pk, node_id=leaf.pk, user=researcher, answer="B2 is <b>42</b>")
    assert set(tree.nodes.filter(status=NodeStatus.STALE).values_list("question", flat=True)) == {
        "B?", "Root?"
    }  # fmt: skip
    _run(tree)
    assert fake.prompts == [("compose", "B?"), ("compose", "Root?")]
    after = _versions(tree)
    changed = {pk for pk in after if after[pk] != before[pk]}
    assert changed == set(
        tree.nodes.filter(question__in=["B2?", "B?", "Root?"]).values_list("pk", flat=True)
    )
    leaf.refresh_from_db()
    assert (leaf.resolution, leaf.answered_by, leaf.person) == (
        Resolution.HUMAN, Author.PERSON, researcher,
    )  # fmt: skip
    assert tree.status == TreeStatus.DONE


def test_rerunning_a_subtree_regenerates_it_and_recomposes_its_ancestors(
    fake, make_tree, researcher
):
    fake.decompositions = three_by_three()
    tree = make_tree()
    fake.reset()
    node = tree.nodes.get(question="C?")
    assert node_rerun(tree_id=tree.pk, node_id=node.pk, user=researcher) == 4
    _run(tree)
    # Its three leaves answered again (not from the memo), then it, then the root: 5 calls.
    assert sorted(fake.prompts) == sorted(
        [("answer", "C1?"), ("answer", "C2?"), ("answer", "C3?"), ("compose", "C?"),
         ("compose", "Root?")]
    )  # fmt: skip
    assert fake.batches == [3, 1, 1]


def test_edits_are_refused_while_the_tree_expands(fake, make_tree, researcher):
    tree = make_tree(expand=False)
    with pytest.raises(ValidationError, match="expanding"):
        node_edit(tree_id=tree.pk, node_id=tree.nodes.get().pk, user=researcher, question="New?")


def test_editing_a_question_drops_its_subtree_and_expands_it_again(fake, make_tree, researcher):
    fake.decompositions = three_by_three()
    tree = make_tree()
    node = tree.nodes.get(question="A?")
    node_edit(tree_id=tree.pk, node_id=node.pk, user=researcher, question="Z?")
    assert not Node.objects.filter(parent=node).exists()
    fake.reset()
    _run(tree)
    assert fake.prompts[0] == ("decompose", "Z?")
    assert tree.nodes.count() == 10  # Z? had no decomposition: answered directly


def test_adding_and_removing_children_respects_budgets(fake, make_tree, researcher):
    fake.decompositions = {"Root?": "1. A?\n2. B?"}
    tree = make_tree(max_depth=1, max_children=4, max_nodes=4)
    root = tree.nodes.get(parent=None)
    node_child_add(tree_id=tree.pk, node_id=root.pk, user=researcher, question="C?")
    _run(tree)
    assert tree.nodes.count() == 4
    with pytest.raises(ValidationError, match="at most 4 nodes"):
        node_child_add(tree_id=tree.pk, node_id=root.pk, user=researcher, question="D?")
    leaf = tree.nodes.get(question="A?")
    with pytest.raises(ValidationError, match="maximum depth"):
        node_child_add(tree_id=tree.pk, node_id=leaf.pk, user=researcher, question="A1?")
    fake.reset()
    node_remove(tree_id=tree.pk, node_id=leaf.pk, user=researcher)
    _run(tree)
    assert fake.prompts == [("compose", "Root?")]
    assert list(root.children.values_list("question", "position")) == [("B?", 0), ("C?", 1)]
    assert tree.nodes.count() == 3


def test_recompute_ignores_the_memo(fake, make_tree, researcher):
    fake.decompositions = {"Root?": "1. Same?\n2. X?", "Other?": "1. Same?"}
    make_tree(max_depth=1)
    other = make_tree("Other?", max_depth=1)
    memo = other.nodes.get(question="Same?")
    assert memo.resolution == Resolution.MEMO
    fake.reset()
    node_recompute(tree_id=other.pk, node_id=memo.pk, user=researcher)
    _run(other)
    assert fake.count("answer", "Same?") == 1
    memo.refresh_from_db()
    assert memo.resolution == Resolution.ANSWERED


def test_augmented_mode_waits_for_people_and_records_who_did_what(
    fake, make_tree, researcher, annotator
):
    from amplification.expansion import node_draft

    fake.decompositions = {"Root?": "1. A?\n2. B?", "B?": "1. B1?"}
    tree = make_tree(mode=Mode.AUGMENTED, max_depth=2)
    assert tree.status == TreeStatus.WAITING and fake.count() == 0  # the root waits
    tree.assignees.add(annotator)
    root = tree.nodes.get()
    node_take(tree_id=tree.pk, node_id=root.pk, user=annotator)
    root.refresh_from_db()
    node_draft(node_id=root.pk, attempt=root.draft_attempt)
    root.refresh_from_db()
    assert root.draft_answer == "answer to Root?"
    assert root.draft_subquestions == "A?\nB?"
    node_decompose_by_person(
        tree_id=tree.pk, node_id=root.pk, user=annotator, subquestions=root.draft_subquestions
    )
    _run(tree)
    assert tree.status == TreeStatus.WAITING  # A? and B? wait for people too
    a = tree.nodes.get(question="A?")
    node_take(tree_id=tree.pk, node_id=a.pk, user=annotator)
    node_answer_by_person(tree_id=tree.pk, node_id=a.pk, user=annotator, answer="Mine.")
    fake.reset()
    tree_release_all(tree_id=tree.pk, user=annotator)
    _run(tree)
    assert tree.status == TreeStatus.DONE
    assert fake.prompts == [("decompose", "B?"), ("answer", "B1?"), ("compose", "B?"),
                            ("compose", "Root?")]  # fmt: skip
    root.refresh_from_db()
    a.refresh_from_db()
    assert (root.decomposed_by, root.answered_by, root.person) == (
        Author.PERSON, Author.MODEL, annotator,
    )  # fmt: skip
    assert (a.resolution, a.answered_by, a.person) == (Resolution.HUMAN, Author.PERSON, annotator)


def test_only_assigned_annotators_may_take_nodes(fake, make_tree, annotator2):
    tree = make_tree(mode=Mode.AUGMENTED)
    with pytest.raises(ValidationError, match="Only researchers"):
        node_take(tree_id=tree.pk, node_id=tree.nodes.get().pk, user=annotator2)


def test_importing_an_exported_tree_gives_an_identical_tree(fake, make_tree, researcher):
    fake.decompositions = {"Root?": "1. Shared?\n2. A?", "A?": "1. Shared?\n2. A1?"}
    tree = make_tree()
    leaf = tree.nodes.get(question="A1?")
    node_edit(tree_id=tree.pk, node_id=leaf.pk, user=researcher, answer="edited")
    _run(tree)
    exported = tree_export(tree)
    assert any(node.memo_origin is not None for node in exported.nodes)
    copy = tree_import(data=TreeExport.model_validate_json(exported.model_dump_json()),
                       created_by=researcher)  # fmt: skip
    assert copy.pk != tree.pk
    assert tree_export(copy).model_dump() == exported.model_dump()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["nodes"].append({**d["nodes"][1], "id": 99, "parent": 42}), "parent 42"),
        (lambda d: d.update(max_nodes=1), "max nodes"),
        (lambda d: d.update(decompose_config="nope"), "no model config"),
        (lambda d: d["nodes"][1].update(depth=2), "depth"),
        (lambda d: d.update(compose_prompt="{question} alone"), "subanswers"),
    ],
)
def test_an_invalid_import_is_refused_and_creates_nothing(
    fake, make_tree, researcher, change, message
):
    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1)
    data = json.loads(tree_export(tree).model_dump_json())
    change(data)
    trees, nodes = Tree.objects.count(), Node.objects.count()
    with pytest.raises(ValidationError, match=message):
        tree_import(data=TreeExport.model_validate(data), created_by=researcher)
    assert (Tree.objects.count(), Node.objects.count()) == (trees, nodes)


def test_nodes_go_to_a_rating_queue_once_and_ratings_filter_the_distillation_set(
    fake, make_tree, researcher, annotator, tmp_path
):
    import datasets

    fake.decompositions = {"Root?": "1. A?\n2. B?"}
    tree = make_tree(max_depth=1)
    queue = Queue.objects.create(name="tree nodes", kind="tree_node_rating")
    assert tree_nodes_to_queue(tree_id=tree.pk, queue=queue, aspect="answer") == 3
    assert tree_nodes_to_queue(tree_id=tree.pk, queue=queue, aspect="answer") == 0
    assert tree_nodes_to_queue(tree_id=tree.pk, queue=queue, aspect="decomposition") == 1
    item = Item.objects.get(external_id=f"tree-node-{tree.nodes.get(question='A?').pk}")
    assert item.payload["aspect"] == "answer" and item.payload["answer"] == "answer to A?"
    Label.objects.create(
        queue=queue, item=item, annotator=annotator, value={"rating": 2}, time_spent_ms=1,
        client_request_id="00000000-0000-0000-0000-000000000001",
    )  # fmt: skip
    path = tmp_path / "distill.jsonl"
    path.write_text("".join(distillation_rows(tree_ids=[tree.pk], min_rating=4)))
    rows = datasets.load_dataset("json", data_files=str(path), split="train")
    assert rows.column_names == ["prompt", "completion", "context"]
    assert sorted(rows["completion"]) == ["answer to B?", "composed: Root?"]  # A? was rated 2 < 4
    unfiltered = list(distillation_rows(tree_ids=[tree.pk], min_rating=None))
    assert len(unfiltered) == 3
    with pytest.raises(ValidationError):
        tree_nodes_to_queue(tree_id=tree.pk, queue=Queue.objects.create(name="p", kind="pairwise"),
                            aspect="answer")  # fmt: skip


def test_distillation_rows_carry_the_context_and_an_imported_copy_adds_no_pairs(
    fake, make_tree, researcher
):
    context = "The seawall is planned on a nearby island."
    fake.decompositions = {"Root?": "1. A?\n2. B?"}
    tree = make_tree(max_depth=1, context=f"{context}\n")
    rows = [json.loads(line) for line in distillation_rows(tree_ids=None, min_rating=None)]
    assert len(rows) == 3
    a = next(row for row in rows if row["completion"] == "answer to A?")
    # The prompt the answerer saw, context included.
    assert a == {"prompt": tree.nodes.get(question="A?").calls[0]["prompt"],
                 "completion": "answer to A?", "context": context}  # fmt: skip
    assert a["prompt"].startswith(f"Context:\n{context}\n\n") and a["prompt"].endswith("A?")
    copy = tree_import(data=tree_export(tree), created_by=researcher)
    assert copy.status == TreeStatus.DONE
    again = list(distillation_rows(tree_ids=None, min_rating=None))
    assert len(again) == 3
    # The same question under another context is another pair.
    make_tree(max_depth=1, context="Another passage.")
    assert len(list(distillation_rows(tree_ids=None, min_rating=None))) == 6
    # A node served from a memo entry that no longer qualifies is no pair for its context.
    Node.objects.filter(tree=copy, question="A?").update(memo_invalid="another context.")
    Node.objects.filter(tree=tree, question="A?").update(memo_invalid="another context.")
    rows = list(distillation_rows(tree_ids=None, min_rating=None))
    found = {(json.loads(row)["context"], json.loads(row)["completion"]) for row in rows}
    assert len(rows) == 5 and (context, "answer to A?") not in found
    assert ("Another passage.", "answer to A?") in found


def test_rating_items_carry_the_context_and_leaves_are_judged_against_it(fake, make_tree):
    from django.template.loader import render_to_string

    from annotations.kinds import item_kind

    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1, context="  Evidence: <b>the wall</b>.  ")
    queue = Queue.objects.create(name="tree nodes", kind="tree_node_rating")
    assert tree_nodes_to_queue(tree_id=tree.pk, queue=queue, aspect="answer") == 2
    template = item_kind("tree_node_rating").template
    leaf = Item.objects.get(external_id=f"tree-node-{tree.nodes.get(question='A?').pk}")
    root = Item.objects.get(external_id=f"tree-node-{tree.nodes.get(question='Root?').pk}")
    assert leaf.payload["context"] == root.payload["context"] == "Evidence: <b>the wall</b>."
    html = render_to_string(template, {"payload": leaf.payload})
    assert "Evidence: &lt;b&gt;the wall&lt;/b&gt;." in html
    assert "How good is this answer, given the context?" in html and "sub-answers" not in html
    html = render_to_string(template, {"payload": root.payload})
    assert "given the sub-answers and the context?" in html


@pytest.mark.parametrize("bad", ["A\x00B", "A\ud800B"])
def test_a_persons_unstorable_text_is_refused_not_stripped(fake, make_tree, researcher, bad):
    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1)
    leaf = tree.nodes.get(question="A?")
    with pytest.raises(ValidationError, match="cannot be stored|not valid text"):
        node_edit(tree_id=tree.pk, node_id=leaf.pk, user=researcher, answer=bad)
    with pytest.raises(ValidationError, match="cannot be stored|not valid text"):
        node_child_add(tree_id=tree.pk, node_id=leaf.pk, user=researcher, question=bad)
    leaf.refresh_from_db()
    assert leaf.answer == "answer to A?" and tree.nodes.count() == 2


def test_the_tree_node_kind_shows_each_aspect_escaped():
    from django.template.loader import render_to_string

    from amplification.kinds import SubAnswer, TreeNodePayload
    from annotations.kinds import item_kind

    kind = item_kind("tree_node_rating")
    assert kind.payload_model is TreeNodePayload
    children = [SubAnswer(question="<i>Sub?</i>", answer="<b>sub answer</b>")]
    answer = TreeNodePayload(question="Q?", answer="<script>x</script>", children=children)
    html = render_to_string(kind.template, {"payload": answer})
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>" not in html
    assert "given the sub-answers" in html and "&lt;b&gt;sub answer" in html
    split = TreeNodePayload(question="Q?", answer="A.", children=children, aspect="decomposition")
    html = render_to_string(kind.template, {"payload": split})
    assert "Is this decomposition helpful" in html and "sub answer" not in html


def test_importing_the_same_tree_twice_is_refused_unless_a_copy_is_asked_for(
    fake, make_tree, researcher
):
    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1)
    exported = tree_export(tree).model_dump_json()
    first = tree_import(data=TreeExport.model_validate_json(exported), created_by=researcher,
                        source="tree-1.json")  # fmt: skip
    assert (first.imported_from, first.import_copy) == ("tree-1.json", 1)
    # The same content, however it is formatted, is the same tree.
    reformatted = json.dumps(json.loads(exported), indent=4)
    counts = (Tree.objects.count(), Node.objects.count())
    with pytest.raises(ValidationError, match=f"already imported: tree {first.pk}, from tree-1"):
        tree_import(data=TreeExport.model_validate_json(reformatted), created_by=researcher,
                    source="again.json")  # fmt: skip
    assert (Tree.objects.count(), Node.objects.count()) == counts
    second = tree_import(data=TreeExport.model_validate_json(reformatted),
                         created_by=researcher, source="again.json", again=True)  # fmt: skip
    assert (second.imported_from, second.import_copy) == ("again.json", 2)
    assert tree_export(second) == tree_export(first)
    # Another tree is no copy of it.
    changed = json.loads(exported) | {"error": "something else"}
    other = tree_import(data=TreeExport.model_validate(changed), created_by=researcher)
    assert other.import_copy == 1 and other.import_sha256 != first.import_sha256


def test_resume_says_why_a_finished_or_expanding_tree_has_nothing_to_resume(
    fake, make_tree, researcher, annotator
):
    from amplification.services import tree_run

    done = make_tree(max_depth=0)
    with pytest.raises(ValidationError, match="nothing to resume"):
        tree_run(tree_id=done.pk)
    expanding = make_tree(expand=False)
    with pytest.raises(ValidationError, match="already expanding"):
        tree_run(tree_id=expanding.pk)
    waiting = make_tree(mode=Mode.AUGMENTED)
    assert waiting.status == TreeStatus.WAITING
    assert tree_run(tree_id=waiting.pk) == 1  # the root still waits for a person
    _run(waiting)
    assert waiting.status == TreeStatus.WAITING


def test_a_tree_keeps_its_prompts_and_context_with_one_kind_of_line_ending(fake, make_tree):
    """What a browser's textareas send ("\r\n") is stored as the same template typed with
    "\n": one template, one memo key, and the prompt the model is shown."""
    from amplification.models import DEFAULT_DECOMPOSE_PROMPT

    tree = make_tree(decompose_prompt=DEFAULT_DECOMPOSE_PROMPT.replace("\n", "\r\n"),
                     context="A town by the sea.\r\nIts wall is old.")  # fmt: skip
    assert tree.decompose_prompt == DEFAULT_DECOMPOSE_PROMPT
    assert tree.context == "A town by the sea.\nIts wall is old."
    root = tree.nodes.get(parent=None)
    assert root.calls and all("\r" not in call["prompt"] for call in root.calls)
