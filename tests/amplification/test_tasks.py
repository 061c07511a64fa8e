"""Expansion on a real Celery worker with the bundled model, and a worker killed mid-step."""

import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from amplification.expansion import TREE_STALE_AFTER, trees_requeue_stale
from amplification.models import Node, NodeStatus, Tree, TreeStatus
from amplification.services import tree_create
from amplification.tasks import tree_expand_task
from tests.factories import ModelConfigFactory
from tests.helpers import PROJECT_DIR, child_environment, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Generous: the machine is shared, and a batch of prompts on 2 busy cores takes a while.
WAIT_S = 900


def _tree(researcher, **fields):
    config = ModelConfigFactory(max_new_tokens=12, timeout_s=600)
    tree = Tree(question="Why do ships float?", decompose_config=config, answer_config=config,
                compose_config=config, **fields)  # fmt: skip
    return tree_create(tree=tree, created_by=researcher)


def test_a_tree_expands_on_a_real_worker_with_the_bundled_model(celery_worker_process, researcher):
    tree = _tree(researcher, max_depth=1, max_children=2, max_nodes=3)
    wait_for(lambda: Tree.objects.get(pk=tree.pk).status == TreeStatus.DONE, timeout=WAIT_S,
             what="the tree")  # fmt: skip
    nodes = list(tree.nodes.all())
    assert 1 <= len(nodes) <= 3
    root = next(node for node in nodes if node.parent_id is None)
    assert root.final_answer.strip()
    assert all(node.status == NodeStatus.DONE for node in nodes)
    call = root.calls[0]
    assert call["prompt_tokens"] > 10 and 1 <= call["completion_tokens"] <= 12
    assert "Why do ships float?" in call["prompt"]


def test_a_worker_killed_mid_expansion_is_resumed_by_the_sweep(
    celery_worker_process, researcher, monkeypatch
):
    # The run goes to a process of our own that we kill in the middle of its first model
    # call; the session's worker must not see the tree until the sweep sends it.
    with monkeypatch.context() as patched:
        patched.setattr("amplification.tasks.tree_expand_task.delay", lambda tree_id: None)
        tree = _tree(researcher, max_depth=1, max_children=2, max_nodes=3)
    assert Tree.objects.get(pk=tree.pk).status == TreeStatus.QUEUED
    code = (
        "import django; django.setup(); from amplification.expansion import tree_expand; "
        f"tree_expand(tree_id={tree.pk})"
    )
    env = child_environment() | {"DJANGO_SETTINGS_MODULE": "config.settings"}
    process = subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_DIR, env=env)
    try:
        wait_for(
            lambda: Node.objects.filter(tree=tree, status=NodeStatus.RUNNING).exists(),
            timeout=WAIT_S,
            what="the node to be claimed",
        )
        time.sleep(1.0)  # inside the model call now
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    tree.refresh_from_db()
    assert tree.status == TreeStatus.RUNNING  # what the dead worker left
    assert tree.nodes.get().status == NodeStatus.RUNNING
    assert trees_requeue_stale() == []  # it has not been silent long enough yet
    later = timezone.now() + TREE_STALE_AFTER + timedelta(seconds=1)
    assert trees_requeue_stale(now=later) == [tree.pk]
    tree_expand_task.delay(tree.pk)  # as the sweep's task sends it
    wait_for(lambda: Tree.objects.get(pk=tree.pk).status == TreeStatus.DONE, timeout=WAIT_S,
             what="resumption")  # fmt: skip
    tree.refresh_from_db()
    assert tree.attempt == 2  # the killed run's, then the resumed one
    assert all(node.status == NodeStatus.DONE for node in tree.nodes.all())
