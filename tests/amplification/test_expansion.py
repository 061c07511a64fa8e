from datetime import timedelta

import pytest
from django.utils import timezone

from amplification.expansion import TREE_STALE_AFTER, tree_expand, trees_requeue_stale
from amplification.models import Node, NodeStatus, Resolution, Tree, TreeStatus
from tests.amplification.conftest import three_by_three

pytestmark = pytest.mark.django_db


def test_a_1_3_9_tree_expands_in_five_batched_steps(fake, make_tree):
    fake.decompositions = three_by_three()
    tree = make_tree()
    assert tree.status == TreeStatus.DONE
    assert tree.nodes.count() == 13
    # Decompose root, decompose its 3 children, answer 9 leaves, compose 3, compose root.
    assert fake.batches == [1, 3, 9, 3, 1]
    assert fake.count() == 17
    root = tree.nodes.get(parent=None)
    assert root.resolution == Resolution.DECOMPOSED
    assert root.composed_answer == "composed: Root?"
    leaves = tree.nodes.filter(depth=2)
    assert {leaf.resolution for leaf in leaves} == {Resolution.ANSWERED}
    assert {leaf.direct_reason for leaf in leaves} == {"max depth reached"}
    assert all(node.status == NodeStatus.DONE for node in tree.nodes.all())
    assert [c["step"] for c in root.calls] == ["decompose", "compose"]
    assert root.calls[0]["prompt"].endswith("Question: Root?\nSub-questions:")


def test_max_nodes_5_never_gets_a_sixth_node(fake, make_tree):
    fake.decompositions = three_by_three()
    tree = make_tree(max_nodes=5)
    assert tree.status == TreeStatus.DONE
    assert tree.nodes.count() == 5
    # The one node of room went to the first child; the others were answered directly.
    reasons = sorted(n.direct_reason for n in tree.nodes.filter(depth=1) if n.direct_reason)
    assert reasons == ["max nodes reached", "max nodes reached"]


def test_unparseable_decomposition_is_answered_directly_and_says_so(fake, make_tree):
    fake.decompositions = {"Root?": "I think this is a good question. Let me think."}
    tree = make_tree()
    root = tree.nodes.get()
    assert root.resolution == Resolution.ANSWERED
    assert root.direct_reason == "no sub-questions could be parsed, twice"
    assert root.answer == "answer to Root?"
    # Asked once more (with other examples) before it was answered directly.
    assert fake.count("decompose") == 2 and fake.count("answer") == 1
    first, again = (call["prompt"] for call in root.calls[:2])
    assert first != again


def test_two_branches_with_the_same_sub_question_call_the_model_once_for_it(fake, make_tree):
    fake.decompositions = {
        "Root?": "1. A?\n2. B?",
        "A?": "1. Shared question?\n2. X?",
        "B?": "1. shared  QUESTION\n2. Y?",
    }
    tree = make_tree()
    assert tree.status == TreeStatus.DONE
    assert fake.count("answer", "Shared question?") + fake.count("answer", "shared  QUESTION") == 1
    # The twin rode on its sibling's call in the same step: no step was added for it.
    assert fake.batches == [1, 2, 3, 2, 1]
    reused = tree.nodes.get(resolution=Resolution.MEMO)
    assert reused.memo_origin is not None and reused.memo_origin.tree_id == tree.pk
    assert reused.answer == reused.memo_origin.answer

    # Across trees: the same sub-question is reused too, under the same model configs,
    # prompts and context (none here; tests/amplification/test_memo.py has the rest).
    fake.reset()
    fake.decompositions["Other root?"] = "1. Shared question?\n2. Z?"
    other = make_tree("Other root?")
    assert fake.count("answer", "Shared question?") == 0
    assert other.nodes.get(question="Shared question?").resolution == Resolution.MEMO


def test_a_leaf_does_not_wait_for_a_twin_that_is_being_decomposed(fake, make_tree):
    fake.decompositions = {"Root?": "1. A?\n2. B?", "A?": "1. B?\n2. X?", "B?": "1. Y?"}
    tree = make_tree()
    assert tree.status == TreeStatus.DONE
    # Waiting for B's composed answer would have cost two more steps; the leaf is answered in
    # the leaves' batch instead.
    assert fake.batches == [1, 2, 3, 2, 1]
    leaf = tree.nodes.get(depth=2, question="B?")
    assert leaf.resolution == Resolution.ANSWERED


def test_a_failed_call_fails_its_nodes_and_retry_goes_on(fake, make_tree, researcher):
    from amplification.services import node_retry

    fake.decompositions = {"Root?": "1. A?\n2. B?"}
    fake.fail_on = "A?"
    tree = make_tree(max_depth=1)
    assert tree.status == TreeStatus.FAILED
    failed = tree.nodes.filter(status=NodeStatus.FAILED)
    assert failed.count() == 2  # one batch: both siblings failed with it
    assert "scripted model failed" in failed.first().error
    fake.fail_on = ""
    for node in failed:
        node_retry(tree_id=tree.pk, node_id=node.pk, user=researcher)
    tree_expand(tree_id=tree.pk)
    tree.refresh_from_db()
    assert tree.status == TreeStatus.DONE


def test_a_killed_worker_leaves_the_tree_resumable_by_the_sweep(fake, make_tree):
    fake.decompositions = {"Root?": "1. A?\n2. B?"}
    tree = make_tree(expand=False, max_depth=1)
    # What a worker killed mid-step leaves: the run claimed, a node marked running, silence.
    long_ago = timezone.now() - TREE_STALE_AFTER - timedelta(seconds=1)
    Tree.objects.filter(pk=tree.pk).update(status=TreeStatus.RUNNING, attempt=1,
                                           heartbeat_at=long_ago)  # fmt: skip
    Node.objects.filter(tree=tree).update(status=NodeStatus.RUNNING)
    assert trees_requeue_stale(now=timezone.now() - timedelta(minutes=1)) == []  # not yet
    assert trees_requeue_stale() == [tree.pk]
    assert trees_requeue_stale() == []  # requeued once
    tree.refresh_from_db()
    assert tree.status == TreeStatus.QUEUED
    tree_expand(tree_id=tree.pk)
    tree.refresh_from_db()
    assert tree.status == TreeStatus.DONE
    assert tree.attempt == 2
    assert tree.nodes.count() == 3


def test_the_sweep_task_sends_each_requeued_tree_to_a_worker(fake, make_tree, monkeypatch):
    from amplification.tasks import trees_requeue_stale_task

    sent = []
    monkeypatch.setattr("amplification.tasks.tree_expand_task.delay", sent.append)
    tree = make_tree(expand=False)
    long_ago = timezone.now() - TREE_STALE_AFTER - timedelta(seconds=1)
    Tree.objects.filter(pk=tree.pk).update(status=TreeStatus.RUNNING, heartbeat_at=long_ago)
    assert trees_requeue_stale_task() == 1
    assert sent == [tree.pk]
    assert trees_requeue_stale_task() == 0 and sent == [tree.pk]


def test_a_superseded_worker_cannot_write(fake, make_tree, monkeypatch):
    import amplification.expansion as expansion

    fake.decompositions = {"Root?": "1. A?\n2. B?"}
    tree = make_tree(expand=False, max_depth=1)
    real_generate = expansion._generate

    def generate_then_superseded(jobs):
        results = real_generate(jobs)
        # Meanwhile the sweeper gave up on this run and another claimed the tree.
        Tree.objects.filter(pk=tree.pk).update(attempt=99)
        return results

    monkeypatch.setattr(expansion, "_generate", generate_then_superseded)
    tree_expand(tree_id=tree.pk)
    root = tree.nodes.get()
    assert root.resolution == Resolution.NONE  # the stale run wrote nothing
    assert tree.nodes.count() == 1


def test_a_second_delivery_finds_nothing_to_claim(fake, make_tree):
    tree = make_tree()
    calls = fake.count()
    tree_expand(tree_id=tree.pk)
    assert fake.count() == calls


def test_stale_trees_are_swept_every_minute_on_the_default_queue():
    from django.conf import settings

    from config.celery import app

    name = "amplification.tasks.trees_requeue_stale_task"
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == name]
    assert [entry["schedule"] for entry in entries] == [60.0]
    assert app.amqp.router.route({}, name)["queue"].name == "default"
    for task in ("tree_expand_task", "node_draft_task"):
        route = app.amqp.router.route({}, f"amplification.tasks.{task}")
        assert route["queue"].name == "generation"


def test_a_bug_fails_the_tree_instead_of_crashing_forever(fake, make_tree, monkeypatch):
    import amplification.expansion as expansion

    tree = make_tree(expand=False)

    def broken(tree):
        raise RuntimeError("a bug")

    monkeypatch.setattr(expansion, "_plan", broken)
    with pytest.raises(RuntimeError):
        tree_expand(tree_id=tree.pk)
    tree.refresh_from_db()
    assert (tree.status, tree.error) == (TreeStatus.FAILED, "expansion stopped: RuntimeError")


# --- drafts ---------------------------------------------------------------------------------
def _taken(make_tree, annotator, question="Root?"):
    from amplification.models import Mode
    from amplification.services import node_take

    tree = make_tree(question, mode=Mode.AUGMENTED)
    tree.assignees.add(annotator)
    node = tree.nodes.get()
    node_take(tree_id=tree.pk, node_id=node.pk, user=annotator)
    node.refresh_from_db()
    return tree, node


def test_a_draft_fills_the_form_and_counts_in_the_trees_cost(fake, make_tree, annotator):
    from amplification.expansion import node_draft
    from amplification.selectors import tree_stats

    tree, node = _taken(make_tree, annotator)
    before = tree_stats(tree)
    wall = Tree.objects.get(pk=tree.pk).wall_s
    fake.step_s = 0.01
    node_draft(node_id=node.pk, attempt=node.draft_attempt)
    node.refresh_from_db()
    assert node.draft_answer == "answer to Root?"
    assert [call["step"] for call in node.calls] == ["draft-answer", "draft-decompose"]
    assert not any(call["stopped"] for call in node.calls)
    after = tree_stats(Tree.objects.get(pk=tree.pk))
    assert after.model_calls == before.model_calls + 2
    assert after.prompt_tokens == before.prompt_tokens + 20  # the scripted 10 a call
    assert after.completion_tokens == before.completion_tokens + 10
    assert after.wall_s > wall


def test_a_draft_whose_node_was_answered_first_is_dropped_without_a_call(
    fake, make_tree, annotator
):
    from amplification.expansion import node_draft
    from amplification.services import node_answer_by_person

    tree, node = _taken(make_tree, annotator)
    node_answer_by_person(tree_id=tree.pk, node_id=node.pk, user=annotator, answer="Mine.")
    fake.reset()
    node_draft(node_id=node.pk, attempt=node.draft_attempt)
    node.refresh_from_db()
    assert fake.count() == 0 and node.calls == []
    assert (node.answer, node.draft_answer) == ("Mine.", "")


def test_a_draft_for_an_earlier_take_writes_nothing(fake, make_tree, annotator):
    from amplification.expansion import node_draft
    from amplification.services import node_release, node_take

    tree, node = _taken(make_tree, annotator)
    first = node.draft_attempt
    node_release(tree_id=tree.pk, node_id=node.pk, user=annotator)
    node_take(tree_id=tree.pk, node_id=node.pk, user=annotator)
    fake.reset()
    node_draft(node_id=node.pk, attempt=first)
    assert fake.count() == 0
    node.refresh_from_db()
    node_draft(node_id=node.pk, attempt=node.draft_attempt)
    node.refresh_from_db()
    assert node.draft_answer == "answer to Root?"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_person_answering_stops_the_draft_being_generated(fake, make_tree, annotator):
    """The draft streams (a character every 0.1 s: about 6 s in all); the person answers
    after a few characters, and the generation stops within a check, writing no draft; what
    it cost so far is counted on the node."""
    import threading
    import time

    from django.db import connection

    from amplification.expansion import DRAFT_CHECK_EVERY_S, node_draft
    from amplification.services import node_answer_by_person
    from tests.helpers import wait_for

    question = "Why do the leaves of some trees turn red in the autumn?"
    tree, node = _taken(make_tree, annotator, question)
    fake.step_s = 0.1

    def draft() -> None:
        try:
            node_draft(node_id=node.pk, attempt=node.draft_attempt)
        finally:
            connection.close()

    worker = threading.Thread(target=draft)
    worker.start()
    wait_for(lambda: fake.streamed >= 12, timeout=30, what="the draft to stream a while")
    node_answer_by_person(tree_id=tree.pk, node_id=node.pk, user=annotator, answer="Mine.")
    answered_at = time.monotonic()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert time.monotonic() - answered_at < DRAFT_CHECK_EVERY_S + 1.0
    assert fake.cut_short
    node.refresh_from_db()
    assert (node.answer, node.draft_answer, node.draft_subquestions) == ("Mine.", "", "")
    # The decomposition ("NONE") had ended; the answer was cut part-way.
    assert [(c["step"], c["stopped"]) for c in node.calls] == [
        ("draft-answer", True), ("draft-decompose", False)
    ]  # fmt: skip
    answer_call = node.calls[0]
    assert 0 < answer_call["completion_tokens"] < len(f"answer to {question}")
    assert f"answer to {question}".startswith(answer_call["raw_output"])


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_draft_stopped_in_its_first_call_never_makes_the_second(fake, make_tree, annotator):
    """Decomposing and answering on different configs are two calls, one after the other:
    the person answers during the first, and the second is never made."""
    import threading

    from django.db import connection

    from amplification.expansion import node_draft
    from amplification.services import node_answer_by_person
    from tests.factories import ModelConfigFactory
    from tests.helpers import wait_for

    tree, node = _taken(make_tree, annotator, "Why is the sea salty but rivers are not?")
    Tree.objects.filter(pk=tree.pk).update(decompose_config=ModelConfigFactory(name="other"))
    fake.step_s = 0.1

    def draft() -> None:
        try:
            node_draft(node_id=node.pk, attempt=node.draft_attempt)
        finally:
            connection.close()

    worker = threading.Thread(target=draft)
    worker.start()
    wait_for(lambda: fake.streamed >= 6, timeout=30, what="the draft to stream a while")
    node_answer_by_person(tree_id=tree.pk, node_id=node.pk, user=annotator, answer="Mine.")
    worker.join(timeout=30)
    assert not worker.is_alive()
    node.refresh_from_db()
    assert [(c["step"], c["stopped"]) for c in node.calls] == [("draft-answer", True)]
    assert fake.count("decompose") == 0 and node.draft_answer == ""


def _copying(fake, question):
    """A decomposer that writes back the examples `question` is first shown, every time."""
    from amplification.prompts import examples_chosen

    shown = [s for e in examples_chosen(question) for s in e.subquestions]
    fake.decompositions[question] = "\n".join(f"{n}. {s}" for n, s in enumerate(shown, 1))


def test_copied_examples_are_resampled_in_one_extra_batch_then_answered_directly(fake, make_tree):
    fake.decompositions = {"Root?": "1. A?\n2. B?"}
    _copying(fake, "A?")
    _copying(fake, "B?")
    copy = fake.decompositions["B?"].splitlines()[0]
    fake.decompositions_again = {"B?": f"1. B one?\n2. B two?\n{copy}"}
    tree = make_tree()
    assert tree.status == TreeStatus.DONE
    # Root; A and B; their resample together (one extra batched call); B's two leaves and
    # A answered directly; B composed; root composed.
    assert fake.batches == [1, 2, 2, 3, 1, 1]
    a = tree.nodes.get(question="A?")
    assert a.resolution == Resolution.ANSWERED and a.children.count() == 0
    assert a.direct_reason.startswith("too few new sub-questions after one resample")
    assert [c["step"] for c in a.calls] == ["decompose", "decompose", "answer"]
    b = tree.nodes.get(question="B?")
    assert b.resolution == Resolution.DECOMPOSED
    assert [kid.question for kid in b.children.order_by("position")] == ["B one?", "B two?"]


def test_the_reason_shows_on_the_node_in_the_inspector(fake, make_tree, researcher):
    from tests.helpers import signed_in

    fake.decompositions = {"Root?": "1. A?\n2. B?"}
    _copying(fake, "A?")
    tree = make_tree()
    a = tree.nodes.get(question="A?")
    body = signed_in(researcher).get(f"/trees/{tree.pk}/?node={a.pk}").content.decode()
    assert "too few new sub-questions after one resample" in body


def test_a_new_tree_on_the_bundled_model_gets_none_of_the_examples_sub_questions(
    researcher, monkeypatch
):
    """The bundled model, greedy and seeded (no fake backend): what a new user met in issue
    24 — "What is photosynthesis?" under a seawall question — does not happen again."""
    from amplification.parsing import words_key
    from amplification.prompts import decompose_prompt
    from amplification.services import tree_create
    from tests.factories import ModelConfigFactory

    monkeypatch.setattr("amplification.tasks.tree_expand_task.delay", lambda tree_id: None)
    config = ModelConfigFactory(max_new_tokens=24, seed=0, timeout_s=1800)
    tree = tree_create(
        tree=Tree(question="Why should a town build a seawall?", decompose_config=config,
                  answer_config=config, compose_config=config, max_depth=1, max_children=2,
                  max_nodes=3),
        created_by=researcher,
    )  # fmt: skip
    tree_expand(tree_id=tree.pk)
    tree.refresh_from_db()
    assert tree.status == TreeStatus.DONE
    root = tree.nodes.get(parent=None)
    prompts = [call["prompt"] for call in root.calls if call["step"] == "decompose"]
    assert prompts and not any("photosynthesis" in prompt for prompt in prompts)
    shown = {words_key(s) for s in decompose_prompt(tree, tree.question, attempt=1)
             .example_subquestions}  # fmt: skip
    shown |= {words_key("What is photosynthesis?"), words_key("Which part of the plant does it?")}
    children = [child.question for child in root.children.all()]
    assert not {words_key(child) for child in children} & shown, children
    assert root.resolution == Resolution.DECOMPOSED or root.direct_reason, root.calls
