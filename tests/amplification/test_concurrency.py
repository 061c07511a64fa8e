"""Races on PostgreSQL with real concurrent transactions: budgets and takes hold."""

import threading

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from amplification.models import Mode, Node
from amplification.services import node_child_add, node_take

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        "postgresql" not in settings.DATABASES["default"]["ENGINE"],
        reason="row locks are only real on PostgreSQL",
    ),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def race(calls) -> list[str]:
    """Run the calls at once, each in its own thread and connection; 'ok' or the error."""
    barrier = threading.Barrier(len(calls))
    results = [""] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            call()
            results[index] = "ok"
        except ValidationError as error:
            results[index] = " ".join(error.messages)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_the_last_node_of_the_budget_goes_to_one_of_four_racing_adds(
    fake, make_tree, researcher, monkeypatch
):
    monkeypatch.setattr("amplification.tasks.tree_expand_task.delay", lambda tree_id: None)
    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1, max_children=4, max_nodes=3)
    root = tree.nodes.get(parent=None)
    results = race([
        lambda n=n: node_child_add(tree_id=tree.pk, node_id=root.pk, user=researcher,
                                   question=f"Racer {n}?")
        for n in range(4)
    ])  # fmt: skip
    # One wins; each other add, serialised behind it on the tree's row lock, finds either the
    # budget spent or the run the winner queued — never a fourth node.
    assert results.count("ok") == 1
    refusals = {"The tree may have at most 3 nodes.",
                "The tree is expanding; edit it once this run has stopped."}  # fmt: skip
    assert all(r in refusals for r in results if r != "ok"), results
    assert Node.objects.filter(tree=tree).count() == 3


def test_two_people_taking_one_node_at_once_one_gets_it(
    fake, make_tree, researcher, annotator, monkeypatch
):
    monkeypatch.setattr("amplification.tasks.node_draft_task.delay", lambda *ids: None)
    monkeypatch.setattr("amplification.tasks.tree_expand_task.delay", lambda tree_id: None)
    tree = make_tree(mode=Mode.AUGMENTED)
    tree.assignees.add(annotator)
    node = tree.nodes.get()
    results = race([
        lambda: node_take(tree_id=tree.pk, node_id=node.pk, user=researcher),
        lambda: node_take(tree_id=tree.pk, node_id=node.pk, user=annotator),
    ])  # fmt: skip
    assert results.count("ok") == 1
    assert any("has already taken this node" in r for r in results)


def test_four_imports_of_one_tree_at_once_make_one_tree(fake, make_tree, researcher):
    from amplification.models import Tree
    from amplification.schemas import TreeExport
    from amplification.selectors import tree_export
    from amplification.services import tree_import

    fake.decompositions = {"Root?": "1. A?"}
    tree = make_tree(max_depth=1)
    data = TreeExport.model_validate_json(tree_export(tree).model_dump_json())
    results = race([
        lambda n=n: tree_import(data=data, created_by=researcher, source=f"upload {n}.json")
        for n in range(4)
    ])  # fmt: skip
    assert results.count("ok") == 1, results
    first = Tree.objects.get(import_copy=1)
    assert all(f"already imported: tree {first.pk}" in r for r in results if r != "ok"), results
    assert Tree.objects.count() == 2
