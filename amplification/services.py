"""Every write of a tree made by a person: create, edit, re-run, take and answer, import,
send to a rating queue. The model's writes are in amplification/expansion.py, which the
tasks run; these services send the tasks (imports run services → tasks → expansion, never back).

Each service locks the tree's row (`select_for_update`) for the whole change, the same lock
every expansion step takes, so an edit and a worker's step never interleave. Edits that
change answers are refused while a run is expanding the tree; taking and answering held
nodes is allowed at any time (the run skips them). Events reach browsers after commit.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from amplification.expansion import children_create, node_version_add, tree_broadcast
from amplification.kinds import SubAnswer, TreeNodePayload
from amplification.models import (
    MAX_ANSWER_CHARS,
    MAX_QUESTION_CHARS,
    Author,
    Mode,
    Node,
    NodeStatus,
    Resolution,
    Tree,
    TreeStatus,
)
from amplification.parsing import REQUIRED, newlines_normalise, subquestions_from_lines
from amplification.schemas import TreeExport
from amplification.tasks import node_draft_task, tree_expand_task
from annotations.kinds import QueueKind
from annotations.models import Item, Queue
from annotations.services import NewItem, queue_items_create
from core.roles import Role, user_has_role
from core.text import text_problem
from llm.models import ModelConfig


def _locked(tree_id: int) -> Tree:
    return Tree.objects.select_for_update().get(pk=tree_id)


def tree_run_request(tree: Tree) -> None:
    """In the caller's transaction, holding the tree's lock: make sure a run will look at the
    tree again, sent once the transaction commits. A running worker plans again after each
    step, so it needs no new task."""
    if tree.status in (TreeStatus.RUNNING, TreeStatus.QUEUED):
        return
    Tree.objects.filter(pk=tree.pk).update(status=TreeStatus.QUEUED, error="")
    tree.status = TreeStatus.QUEUED
    tree_id = tree.pk
    transaction.on_commit(lambda: tree_expand_task.delay(tree_id))
    tree_broadcast(tree_id)


def _clean_text(text: str, *, what: str, limit: int, required: bool = True) -> str:
    """A person's text: refused, naming it, where the database cannot store it (core/text.py,
    the project's one check), empty when required, or over `limit`."""
    problem = text_problem(text)
    if problem:
        raise ValidationError(f"The {what} {problem}.")
    text = text.strip()
    if required and not text:
        raise ValidationError(f"The {what} must not be empty.")
    if len(text) > limit:
        raise ValidationError(f"The {what} is {len(text)} characters; the limit is {limit}.")
    return text


def tree_prompts_check(tree: Tree) -> None:
    for name, needed in REQUIRED.items():
        template = getattr(tree, name)
        for placeholder in needed:
            if placeholder not in template:
                label = name.replace("_", " ")
                raise ValidationError(f"The {label} must contain {placeholder}.")


def tree_create(*, tree: Tree, created_by: User, assignees: list[User] | None = None) -> Tree:
    """Save a tree a TreeForm validated, with its root node, and start expanding it."""
    tree.question = _clean_text(tree.question, what="question", limit=MAX_QUESTION_CHARS)
    # Stored as they render (a browser's textarea sends "\r\n"): one template, one memo key.
    for name in ("decompose_prompt", "answer_prompt", "compose_prompt", "context"):
        setattr(tree, name, newlines_normalise(getattr(tree, name)))
    tree.full_clean(exclude=["created_by"])
    tree_prompts_check(tree)
    with transaction.atomic():
        tree.created_by = created_by
        tree.hold_new_nodes = tree.mode == Mode.AUGMENTED
        tree.status = TreeStatus.WAITING
        tree.save()
        if assignees:
            tree.assignees.set(assignees)
        Node.objects.create(tree=tree, question=tree.question, held=tree.hold_new_nodes)
        tree_run_request(tree)
    return tree


def tree_run(*, tree_id: int) -> int:
    """Resume (or re-check) a tree: a run picks up every node that can move. Returns how
    many nodes wait for a person (held or taken), which a run leaves as they are. A finished
    tree, or one already expanding, has nothing to resume: a ValidationError says so."""
    with transaction.atomic():
        tree = _locked(tree_id)
        if tree.status == TreeStatus.DONE:
            raise ValidationError(
                "Every node of this tree is done: there is nothing to resume. Edit a node or "
                "re-run a subtree to change it."
            )
        if tree.status in (TreeStatus.QUEUED, TreeStatus.RUNNING):
            raise ValidationError("The tree is already expanding: there is nothing to resume.")
        tree_run_request(tree)
        return Node.objects.filter(
            Q(held=True) | Q(taken_by__isnull=False), tree=tree,
            status__in=(NodeStatus.PENDING, NodeStatus.STALE),
        ).count()  # fmt: skip


def tree_user_may_work(tree: Tree, user: User) -> bool:
    """Researchers, and annotators assigned to the tree, may take and answer its nodes."""
    if user_has_role(user, Role.RESEARCHER):
        return True
    return tree.assignees.filter(pk=user.pk).exists()


def _check_idle(tree: Tree) -> None:
    if tree.status in (TreeStatus.QUEUED, TreeStatus.RUNNING):
        raise ValidationError("The tree is expanding; edit it once this run has stopped.")


def _node(tree: Tree, node_id: int) -> Node:
    node = Node.objects.filter(tree=tree, pk=node_id).first()
    if node is None:
        raise ValidationError("No such node in this tree.")
    return node


def _ancestors_stale(node: Node) -> None:
    """Everything above a change depends on it: recompose each ancestor."""
    parent_id = node.parent_id
    while parent_id is not None:
        parent = Node.objects.get(pk=parent_id)
        if parent.resolution == Resolution.DECOMPOSED and parent.status != NodeStatus.FAILED:
            Node.objects.filter(pk=parent.pk).update(status=NodeStatus.STALE)
        parent_id = parent.parent_id


def _subtree(node: Node) -> list[Node]:
    found, frontier = [node], [node.pk]
    while frontier:
        level = list(Node.objects.filter(parent_id__in=frontier))
        found.extend(level)
        frontier = [child.pk for child in level]
    return found


def _descendants_delete(node: Node) -> None:
    Node.objects.filter(parent=node).delete()  # cascades down the subtree


def _node_reset(node: Node) -> None:
    node.resolution = Resolution.NONE
    node.answer = node.composed_answer = node.error = ""
    node.decomposed_by = node.answered_by = Author.NONE
    node.memo_forget()
    node.person = None
    node.status = NodeStatus.PENDING


def node_edit(
    *, tree_id: int, node_id: int, user: User, question: str | None = None,
    answer: str | None = None,
) -> Node:  # fmt: skip
    """A researcher edits a node's question (its subtree goes: the old decomposition no longer
    applies; the node is expanded again) or its answer (kept as the person's). Everything
    above becomes stale and is recomposed; nothing else is regenerated."""
    with transaction.atomic():
        tree = _locked(tree_id)
        _check_idle(tree)
        node = _node(tree, node_id)
        if question is not None:
            text = _clean_text(question, what="question", limit=MAX_QUESTION_CHARS)
            if text != node.question:
                _descendants_delete(node)
                node.question = text
                _node_reset(node)
                node.direct_reason = ""
                node_version_add(node, reason="question edited", author=Author.PERSON,
                                 person=user)  # fmt: skip
                node.save()
                if node.parent_id is None:
                    Tree.objects.filter(pk=tree.pk).update(question=text)
        if answer is not None:
            text = _clean_text(answer, what="answer", limit=MAX_ANSWER_CHARS)
            if node.status in (NodeStatus.PENDING, NodeStatus.RUNNING):
                raise ValidationError("This node has no answer yet to edit.")
            if text != node.final_answer:
                if node.resolution == Resolution.DECOMPOSED:
                    node.composed_answer = text
                else:
                    node.answer = text
                    node.resolution = Resolution.HUMAN
                    node.memo_forget()
                node.answered_by = Author.PERSON
                node.person = user
                node.status = NodeStatus.DONE
                node_version_add(node, reason="answer edited", author=Author.PERSON,
                                 person=user)  # fmt: skip
                node.save()
        _ancestors_stale(node)
        tree_run_request(tree)
        tree_broadcast(tree.pk)
    return node


def node_child_add(*, tree_id: int, node_id: int, user: User, question: str) -> Node:
    """Add a sub-question under a node, within the tree's budgets; the node recomposes."""
    with transaction.atomic():
        tree = _locked(tree_id)
        _check_idle(tree)
        node = _node(tree, node_id)
        text = _clean_text(question, what="question", limit=MAX_QUESTION_CHARS)
        _budget_check(tree, node, adding=1)
        if node.resolution != Resolution.DECOMPOSED:
            _node_reset(node)
            node.resolution = Resolution.DECOMPOSED
        node.decomposed_by = Author.PERSON
        node.person = user
        node.status = NodeStatus.STALE
        node.save()
        (child,) = children_create(tree, node, [text], held=False)
        _ancestors_stale(node)
        tree_run_request(tree)
        tree_broadcast(tree.pk)
    return child


def _budget_check(tree: Tree, node: Node, *, adding: int) -> None:
    if node.depth + 1 > tree.max_depth:
        raise ValidationError(f"This node is at the maximum depth ({tree.max_depth}).")
    if node.children.count() + adding > tree.max_children:
        raise ValidationError(f"A node may have at most {tree.max_children} sub-questions.")
    if tree.nodes.count() + adding > tree.max_nodes:
        raise ValidationError(f"The tree may have at most {tree.max_nodes} nodes.")


def node_remove(*, tree_id: int, node_id: int, user: User) -> None:
    """Remove a node and its subtree; its parent recomposes from the rest (or, left with no
    children, is answered directly)."""
    with transaction.atomic():
        tree = _locked(tree_id)
        _check_idle(tree)
        node = _node(tree, node_id)
        if node.parent_id is None:
            raise ValidationError("The root cannot be removed; delete the tree instead.")
        parent = Node.objects.get(pk=node.parent_id)
        node.delete()
        remaining = list(parent.children.order_by("position", "pk"))
        for position, child in enumerate(remaining):
            if child.position != position:
                Node.objects.filter(pk=child.pk).update(position=position)
        if remaining:
            parent.status = NodeStatus.STALE
        else:
            _node_reset(parent)
            parent.direct_reason = "its sub-questions were removed"
        parent.save()
        _ancestors_stale(parent)
        tree_run_request(tree)
        tree_broadcast(tree.pk)


def node_rerun(*, tree_id: int, node_id: int, user: User) -> int:
    """Re-run a node's subtree: every model-made answer in it is made again (leaves answered
    again, ignoring the memo; decomposed nodes recomposed), keeping its sub-questions and any
    person's answers; then its ancestors recompose. Returns how many nodes became stale."""
    with transaction.atomic():
        tree = _locked(tree_id)
        _check_idle(tree)
        node = _node(tree, node_id)
        marked = 0
        for member in _subtree(node):
            if member.resolution == Resolution.HUMAN or member.taken_by_id:
                continue
            if member.resolution in (Resolution.ANSWERED, Resolution.MEMO):
                member.skip_memo = True
                member.status = NodeStatus.STALE
            elif member.resolution == Resolution.DECOMPOSED:
                member.status = NodeStatus.STALE
            else:
                member.status = NodeStatus.PENDING
                member.held = False
            member.error = ""
            member.save()
            marked += 1
        _ancestors_stale(node)
        tree_run_request(tree)
        tree_broadcast(tree.pk)
    return marked


def node_recompute(*, tree_id: int, node_id: int, user: User) -> Node:
    """Ignore a memo hit: expand the node afresh (decompose or answer) with the model."""
    with transaction.atomic():
        tree = _locked(tree_id)
        _check_idle(tree)
        node = _node(tree, node_id)
        if node.resolution != Resolution.MEMO:
            raise ValidationError("Only a reused (memo) answer can be recomputed this way.")
        _node_reset(node)
        node.skip_memo = True
        node.save()
        _ancestors_stale(node)
        tree_run_request(tree)
        tree_broadcast(tree.pk)
    return node


def node_retry(*, tree_id: int, node_id: int, user: User) -> Node:
    """Try a failed node's call again."""
    with transaction.atomic():
        tree = _locked(tree_id)
        node = _node(tree, node_id)
        if node.status != NodeStatus.FAILED:
            raise ValidationError("Only a failed node can be retried.")
        node.status = (
            NodeStatus.RUNNING if node.resolution == Resolution.DECOMPOSED else NodeStatus.PENDING
        )
        node.error = ""
        node.save()
        tree_run_request(tree)
        tree_broadcast(tree.pk)
    return node


# --- augmented mode: people at the nodes ------------------------------------------------------
def node_take(*, tree_id: int, node_id: int, user: User) -> Node:
    """A person takes a pending node; the model drafts a suggestion for them meanwhile."""
    with transaction.atomic():
        tree = _locked(tree_id)
        if not tree_user_may_work(tree, user):
            raise ValidationError("Only researchers and the tree's annotators can take nodes.")
        node = _node(tree, node_id)
        if node.status not in (NodeStatus.PENDING, NodeStatus.STALE) or (
            node.resolution not in (Resolution.NONE, Resolution.ANSWERED, Resolution.MEMO)
        ):
            raise ValidationError("Only a node waiting to be expanded can be taken.")
        if node.taken_by_id and node.taken_by_id != user.pk:
            raise ValidationError(f"{node.taken_by} has already taken this node.")
        node.taken_by = user
        node.draft_answer = node.draft_subquestions = ""
        # A new take: a draft still running for an earlier one stops and writes no text.
        node.draft_attempt += 1
        node.save()
        attempt = node.draft_attempt
        transaction.on_commit(lambda: node_draft_task.delay(node.pk, attempt))
        tree_broadcast(tree.pk)
    return node


def _taken_by(tree: Tree, node_id: int, user: User) -> Node:
    node = _node(tree, node_id)
    if node.taken_by_id != user.pk:
        raise ValidationError("Take this node first.")
    return node


def _untake(node: Node) -> None:
    """The node is no longer taken: its draft, finished or not, is no longer wanted (a draft
    being generated sees that and stops: amplification.expansion.node_draft)."""
    node.taken_by = None
    node.draft_answer = node.draft_subquestions = ""


def node_answer_by_person(*, tree_id: int, node_id: int, user: User, answer: str) -> Node:
    """A person answers a node they took; its parent can then compose."""
    with transaction.atomic():
        tree = _locked(tree_id)
        node = _taken_by(tree, node_id, user)
        text = _clean_text(answer, what="answer", limit=MAX_ANSWER_CHARS)
        _descendants_delete(node)
        node.answer, node.composed_answer = text, ""
        node.resolution = Resolution.HUMAN
        node.answered_by = Author.PERSON
        node.person = user
        node.memo_forget()
        node.status = NodeStatus.DONE
        node.held = False
        _untake(node)
        node_version_add(node, reason="answered by a person", author=Author.PERSON, person=user)
        node.save()
        _ancestors_stale(node)
        tree_run_request(tree)
        tree_broadcast(tree.pk)
    return node


def node_decompose_by_person(
    *, tree_id: int, node_id: int, user: User, subquestions: str
) -> list[Node]:
    """A person decomposes a node they took (one sub-question a line), within budgets."""
    with transaction.atomic():
        tree = _locked(tree_id)
        node = _taken_by(tree, node_id, user)
        questions = [
            _clean_text(q, what="sub-question", limit=MAX_QUESTION_CHARS)
            for q in subquestions_from_lines(subquestions)
        ]
        if not questions:
            raise ValidationError("Write at least one sub-question, one a line.")
        _descendants_delete(node)
        _budget_check(tree, node, adding=len(questions))
        _node_reset(node)
        node.resolution = Resolution.DECOMPOSED
        node.decomposed_by = Author.PERSON
        node.person = user
        node.status = NodeStatus.RUNNING
        node.held = False
        _untake(node)
        node.save()
        kids = children_create(tree, node, questions, held=tree.hold_new_nodes)
        tree_run_request(tree)
        tree_broadcast(tree.pk)
    return kids


def node_release(*, tree_id: int, node_id: int, user: User) -> Node:
    """Hand a held (or taken) node to the model."""
    with transaction.atomic():
        tree = _locked(tree_id)
        if not tree_user_may_work(tree, user):
            raise ValidationError("Only researchers and the tree's annotators can do that.")
        node = _node(tree, node_id)
        node.held = False
        _untake(node)
        node.save()
        tree_run_request(tree)
        tree_broadcast(tree.pk)
    return node


def tree_release_all(*, tree_id: int, user: User) -> int:
    """Hand every waiting node, and every node made from now on, to the model."""
    with transaction.atomic():
        tree = _locked(tree_id)
        if not tree_user_may_work(tree, user):
            raise ValidationError("Only researchers and the tree's annotators can do that.")
        Tree.objects.filter(pk=tree.pk).update(hold_new_nodes=False)
        released = Node.objects.filter(tree=tree, held=True, taken_by__isnull=True).update(
            held=False
        )
        tree_run_request(tree)
        tree_broadcast(tree.pk)
    return released


# --- import -----------------------------------------------------------------------------------
def tree_import(
    *, data: TreeExport, created_by: User, source: str = "a tree export", again: bool = False
) -> Tree:
    """Store a whole exported tree, all or nothing; a structural problem is a ValidationError.

    `source` (a file name, or "the API") is kept as the tree's "imported from" mark. A tree
    whose content (the validated export, re-serialised: formatting does not count) was
    imported before is refused, naming the earlier tree, unless `again` asks for another copy
    on purpose; copies are numbered. Two imports of one content at once: the unique
    (content, copy) constraint lets one through and the other is refused the same way."""
    digest = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
    earlier = Tree.objects.filter(import_sha256=digest).order_by("import_copy", "pk")
    first = earlier.first()
    if first is not None and not again:
        raise _already_imported(first)
    copy = (earlier.aggregate(top=Max("import_copy"))["top"] or 0) + 1
    try:
        return _tree_import(data=data, created_by=created_by, source=source[:255],
                            digest=digest, copy=copy)  # fmt: skip
    except IntegrityError:
        first = earlier.first()
        if first is None:
            raise
        raise _already_imported(first) from None


def _already_imported(tree: Tree) -> ValidationError:
    when = timezone.localtime(tree.created_at).strftime("%Y-%m-%d %H:%M")
    return ValidationError(
        f"This tree was already imported: tree {tree.pk}, from {tree.imported_from}, on "
        f"{when}. Nothing was imported."
    )


def _tree_import(
    *, data: TreeExport, created_by: User, source: str, digest: str, copy: int
) -> Tree:
    configs = {}
    for field in ("decompose_config", "answer_config", "compose_config"):
        name = getattr(data, field)
        config = ModelConfig.objects.filter(name=name).first()
        if config is None:
            raise ValidationError(f"{field.replace('_', ' ')}: no model config named {name!r}.")
        configs[field] = config
    _structure_check(data)
    users = {u.username: u for u in User.objects.filter(
        username__in={n.person for n in data.nodes if n.person})}  # fmt: skip
    status = data.status
    if status in (TreeStatus.QUEUED, TreeStatus.RUNNING):
        status = TreeStatus.WAITING
    with transaction.atomic():
        tree = Tree(
            question=data.question, context=data.context, **configs,
            decompose_prompt=data.decompose_prompt, answer_prompt=data.answer_prompt,
            compose_prompt=data.compose_prompt, max_depth=data.max_depth,
            max_children=data.max_children, max_nodes=data.max_nodes, mode=data.mode,
            hold_new_nodes=data.hold_new_nodes, status=status, error=data.error,
            is_demo=data.is_demo, wall_s=data.wall_s, created_by=created_by,
            imported_from=source, import_sha256=digest, import_copy=copy,
        )  # fmt: skip
        tree.full_clean(exclude=["created_by"])
        tree_prompts_check(tree)
        tree.save()
        made: dict[int, Node] = {}
        for item in data.nodes:
            running = item.status == NodeStatus.RUNNING and item.resolution == Resolution.NONE
            node = Node.objects.create(
                tree=tree, parent=made[item.parent] if item.parent is not None else None,
                position=item.position, depth=item.depth, question=item.question,
                resolution=item.resolution, direct_reason=item.direct_reason,
                answer=item.answer, composed_answer=item.composed_answer,
                status=NodeStatus.PENDING if running else item.status, error=item.error,
                decomposed_by=item.decomposed_by, answered_by=item.answered_by,
                person=users.get(item.person) if item.person else None,
                calls=[call.model_dump(mode="json") for call in item.calls],
                memo_source=item.memo.model_dump(mode="json") if item.memo else None,
                memo_invalid=item.memo_invalid,
                prompt_tokens=item.prompt_tokens, completion_tokens=item.completion_tokens,
                total_s=item.total_s, version=len(item.versions),
            )  # fmt: skip
            made[item.id] = node
            for version in item.versions:
                node.versions.create(
                    number=version.number, question=version.question, answer=version.answer,
                    resolution=version.resolution, reason=version.reason,
                    author=version.author, person=node.person,
                )  # fmt: skip
        for item in data.nodes:
            if item.memo_origin is not None:
                Node.objects.filter(pk=made[item.id].pk).update(memo_origin=made[item.memo_origin])
    return tree


def _structure_check(data: TreeExport) -> None:
    # Text the database cannot store was refused by the schema's StoredText (core/text.py).
    if len(data.nodes) > data.max_nodes:
        raise ValidationError(f"{len(data.nodes)} nodes, but max nodes is {data.max_nodes}.")
    seen: dict[int, int] = {}  # id -> depth
    children: dict[int, int] = {}
    roots = 0
    for number, node in enumerate(data.nodes, start=1):
        where = f"node {number}"
        if node.id in seen:
            raise ValidationError(f"{where}: id {node.id} is used twice.")
        if node.parent is None:
            roots += 1
            if node.depth != 0:
                raise ValidationError(f"{where}: the root must have depth 0.")
        else:
            if node.parent not in seen:
                raise ValidationError(f"{where}: parent {node.parent} must come before it.")
            if node.depth != seen[node.parent] + 1:
                raise ValidationError(f"{where}: depth must be its parent's plus one.")
            children[node.parent] = children.get(node.parent, 0) + 1
            if children[node.parent] > data.max_children:
                raise ValidationError(f"{where}: more than max children under its parent.")
        if node.depth > data.max_depth:
            raise ValidationError(f"{where}: deeper than max depth {data.max_depth}.")
        numbers = [version.number for version in node.versions]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValidationError(f"{where}: versions must be numbered 1, 2, 3 … in order.")
        if node.memo_origin is not None and node.memo_origin not in {n.id for n in data.nodes}:
            raise ValidationError(f"{where}: memo origin {node.memo_origin} is not in the tree.")
        seen[node.id] = node.depth
    if roots != 1 or data.nodes[0].parent is not None:
        raise ValidationError("A tree has exactly one root, and it comes first.")
    if data.nodes[0].question != data.question:
        raise ValidationError("The root's question must be the tree's question.")


# --- rating queues ------------------------------------------------------------------------
Aspect = Literal["answer", "decomposition"]
ASPECT_ANSWER: Aspect = "answer"
ASPECT_DECOMPOSITION: Aspect = "decomposition"


def node_external_id(node_id: int, aspect: str) -> str:
    suffix = "" if aspect == ASPECT_ANSWER else f"-{aspect}"
    return f"tree-node-{node_id}{suffix}"


def tree_nodes_to_queue(*, tree_id: int, queue: Queue, aspect: Aspect) -> int:
    """Add a tree's finished nodes to a tree-node rating queue, each node once per aspect:
    "is this answer right?" (every done node: a decomposed one given its children's answers,
    a leaf against the context alone) or "is this decomposition helpful?" (decomposed nodes).
    Every item carries the tree's context, the evidence raters judge the answer against.
    Returns how many were added."""
    if queue.kind != QueueKind.TREE_NODE_RATING:
        raise ValidationError("Choose a tree-node rating queue.")
    if aspect not in (ASPECT_ANSWER, ASPECT_DECOMPOSITION):
        raise ValidationError(f"Unknown aspect {aspect!r}.")
    context = Tree.objects.values_list("context", flat=True).get(pk=tree_id).strip()
    nodes = Node.objects.filter(tree_id=tree_id, status=NodeStatus.DONE).order_by("depth", "pk")
    if aspect == ASPECT_DECOMPOSITION:
        nodes = nodes.filter(resolution=Resolution.DECOMPOSED)
    present = set(
        Item.objects.filter(queue=queue, external_id__startswith="tree-node-").values_list(
            "external_id", flat=True
        )
    )
    items = []
    for node in nodes.prefetch_related("children"):
        external_id = node_external_id(node.pk, aspect)
        if external_id in present or not node.final_answer.strip():
            continue
        kids = sorted(node.children.all(), key=lambda n: n.position)
        payload = TreeNodePayload(
            question=node.question, context=context, answer=node.final_answer, aspect=aspect,
            children=[SubAnswer(question=k.question, answer=k.final_answer) for k in kids],
            source_id=f"tree-node:{node.pk}",
        )  # fmt: skip
        items.append(NewItem(payload=payload, external_id=external_id))
    if not items:
        return 0
    return queue_items_create(queue=queue, items=items)
