"""Reads of trees shared by the pages, the websocket and the exports."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Count, Q, QuerySet, Sum, TextChoices

from amplification.models import (
    Author,
    Mode,
    Node,
    NodeStatus,
    NodeVersion,
    Resolution,
    Tree,
    TreeStatus,
)
from amplification.parsing import words_key
from amplification.prompts import answer_prompt
from amplification.schemas import (
    DistillRow,
    MemoSource,
    NodeCall,
    NodeExport,
    TreeExport,
    VersionExport,
)
from annotations.kinds import QueueKind
from annotations.models import Label
from core.roles import Role, user_has_role


def tree_for_user(user: AbstractBaseUser | AnonymousUser, tree_id: int) -> Tree | None:
    """A researcher sees every tree; an annotator only trees they are assigned to."""
    if not isinstance(user, User):
        return None
    trees = Tree.objects.select_related("decompose_config", "answer_config", "compose_config")
    if not user_has_role(user, Role.RESEARCHER):
        trees = trees.filter(assignees=user)
    return trees.filter(pk=tree_id).first()


def trees_filtered(
    *, status: str = "", mode: str = "", query: str = "", assigned_to: User | None = None
) -> QuerySet[Tree]:
    trees = Tree.objects.annotate(
        node_count=Count("nodes", distinct=True),
        tokens=Sum("nodes__completion_tokens"),
    ).select_related("created_by")
    if assigned_to is not None:
        trees = trees.filter(pk__in=Tree.assignees.through.objects.filter(
            user=assigned_to).values("tree_id"))  # fmt: skip
    if status:
        trees = trees.filter(status=status)
    if mode:
        trees = trees.filter(mode=mode)
    if query:
        in_nodes = Node.objects.filter(question__icontains=query).values("tree_id")
        trees = trees.filter(Q(question__icontains=query) | Q(pk__in=in_nodes))
    return trees.order_by("-created_at")


@dataclass
class OutlineNode:
    node: Node
    children: list[OutlineNode] = field(default_factory=list)
    match: bool = False

    @property
    def calls(self) -> list[NodeCall]:
        return [NodeCall.model_validate(call) for call in self.node.calls]


@dataclass(frozen=True)
class TreeStats:
    nodes: int
    depth: int
    prompt_tokens: int
    completion_tokens: int
    model_calls: int
    wall_s: float
    memo_hits: int
    human_nodes: int
    done: int
    failed: int
    stale: int
    running: int

    @property
    def progress_percent(self) -> int:
        return round(100 * self.done / self.nodes) if self.nodes else 0


def tree_outline(tree: Tree, *, query: str = "") -> tuple[OutlineNode, list[OutlineNode]]:
    """The tree as nested OutlineNodes (root, and every node in pre-order); `query` marks
    nodes whose question or answer contains it."""
    nodes = list(tree.nodes.select_related("person", "taken_by", "memo_origin"))
    wrapped = {node.pk: OutlineNode(node) for node in nodes}
    root = None
    for node in nodes:
        item = wrapped[node.pk]
        needle = query.casefold()
        item.match = bool(needle) and (
            needle in node.question.casefold() or needle in node.final_answer.casefold()
        )
        if node.parent_id is None:
            root = item
        else:
            wrapped[node.parent_id].children.append(item)
    assert root is not None, f"tree {tree.pk} has no root"
    for item in wrapped.values():
        item.children.sort(key=lambda child: (child.node.position, child.node.pk))
    return root, list(_preorder(root))


def tree_import_copies(tree: Tree) -> list[Tree]:
    """Other trees imported from the same content as this one, in the order they came."""
    if not tree.import_sha256:
        return []
    found = Tree.objects.filter(import_sha256=tree.import_sha256).exclude(pk=tree.pk)
    return list(found.order_by("import_copy", "pk"))


def _preorder(item: OutlineNode) -> Iterator[OutlineNode]:
    yield item
    for child in item.children:
        yield from _preorder(child)


def tree_stats(tree: Tree, nodes: list[Node] | None = None) -> TreeStats:
    nodes = nodes if nodes is not None else list(tree.nodes.all())
    by: dict[str, int] = defaultdict(int)
    for node in nodes:
        by[node.status] += 1
    return TreeStats(
        nodes=len(nodes),
        depth=max((node.depth for node in nodes), default=0),
        prompt_tokens=sum(node.prompt_tokens or 0 for node in nodes),
        completion_tokens=sum(node.completion_tokens or 0 for node in nodes),
        model_calls=sum(len(node.calls) for node in nodes),
        wall_s=tree.wall_s,
        memo_hits=sum(1 for node in nodes if node.resolution == Resolution.MEMO),
        human_nodes=sum(
            1 for node in nodes if Author.PERSON in (node.answered_by, node.decomposed_by)
        ),  # fmt: skip
        done=by[NodeStatus.DONE],
        failed=by[NodeStatus.FAILED],
        stale=by[NodeStatus.STALE],
        running=by[NodeStatus.RUNNING],
    )


@dataclass(frozen=True)
class Segment:
    op: str  # "same", "ins", "del"
    text: str


@dataclass(frozen=True)
class VersionDiff:
    version: NodeVersion
    question: list[Segment]
    answer: list[Segment]


# A word with the whitespace after it (and any whitespace the text starts with, alone).
_WORDS = re.compile(r"^\s+|\S+\s*")


def text_diff(before: str, after: str) -> list[Segment]:
    """A word-level diff as plain-text segments; templates escape each one.

    Words are compared without their whitespace, so a change reads as whole words: "A plant"
    → "Sea levels" is one deletion ("A plant") and one insertion ("Sea levels"), never
    "~~A~~Sea ~~plant~~levels" stitched together at the space they share. Unchanged runs are
    shown as the new text has them."""
    a, b = _WORDS.findall(before), _WORDS.findall(after)
    matcher = difflib.SequenceMatcher(
        None, [w.strip() for w in a], [w.strip() for w in b], autojunk=False
    )
    segments: list[Segment] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            segments.append(Segment("same", "".join(b[j1:j2])))
            continue
        deleted, inserted = "".join(a[i1:i2]), "".join(b[j1:j2])
        if deleted:
            # Followed by its replacement: the space between them is the insertion's.
            segments.append(Segment("del", deleted.rstrip() if inserted else deleted))
        if inserted:
            segments.append(Segment("ins", inserted))
    return segments


def node_versions(node: Node) -> list[VersionDiff]:
    """Each version against the one before it, newest first."""
    diffs = []
    previous = None
    for version in node.versions.select_related("person").order_by("number"):
        diffs.append(
            VersionDiff(
                version,
                text_diff(previous.question if previous else "", version.question),
                text_diff(previous.answer if previous else "", version.answer),
            )
        )
        previous = version
    return diffs[::-1]


# --- exports ------------------------------------------------------------------------------
def tree_export(tree: Tree) -> TreeExport:
    """The whole tree (nodes in pre-order with local ids, calls, versions) for JSON export."""
    _, ordered = tree_outline(tree)
    local = {item.node.pk: number for number, item in enumerate(ordered)}
    versions: dict[int, list[NodeVersion]] = defaultdict(list)
    for version in NodeVersion.objects.filter(node__tree=tree).order_by("node", "number"):
        versions[version.node_id].append(version)
    nodes = []
    for number, item in enumerate(ordered):
        node = item.node
        nodes.append(
            NodeExport(
                id=number, parent=local[node.parent_id] if node.parent_id else None,
                position=node.position, depth=node.depth, question=node.question,
                resolution=Resolution(node.resolution), direct_reason=node.direct_reason,
                answer=node.answer, composed_answer=node.composed_answer,
                status=NodeStatus(node.status), error=node.error,
                decomposed_by=Author(node.decomposed_by), answered_by=Author(node.answered_by),
                person=node.person.username if node.person else None,
                memo_origin=local.get(node.memo_origin_id) if node.memo_origin_id else None,
                memo=MemoSource.model_validate(node.memo_source) if node.memo_source else None,
                memo_invalid=node.memo_invalid,
                calls=item.calls, prompt_tokens=node.prompt_tokens,
                completion_tokens=node.completion_tokens, total_s=node.total_s,
                versions=[
                    VersionExport(
                        number=v.number, question=v.question, answer=v.answer,
                        resolution=Resolution(v.resolution), reason=v.reason,
                        author=Author(v.author),
                    )
                    for v in versions[node.pk]
                ],
            )
        )  # fmt: skip
    return TreeExport(
        format="arbiter-amplification-tree/1", question=tree.question, context=tree.context,
        decompose_config=tree.decompose_config.name, answer_config=tree.answer_config.name,
        compose_config=tree.compose_config.name, decompose_prompt=tree.decompose_prompt,
        answer_prompt=tree.answer_prompt, compose_prompt=tree.compose_prompt,
        max_depth=tree.max_depth, max_children=tree.max_children, max_nodes=tree.max_nodes,
        mode=Mode(tree.mode), hold_new_nodes=tree.hold_new_nodes,
        status=TreeStatus(tree.status),
        error=tree.error, is_demo=tree.is_demo, wall_s=tree.wall_s, nodes=nodes,
    )  # fmt: skip


def node_ratings() -> dict[int, float]:
    """Mean "is this answer right?" rating of each node rated in a tree-node queue."""
    sums: dict[int, list[int]] = defaultdict(list)
    labels = Label.objects.filter(
        queue__kind=QueueKind.TREE_NODE_RATING, item__external_id__regex=r"^tree-node-[0-9]+$"
    ).values_list("item__external_id", "value")
    for external_id, value in labels:
        sums[int(external_id.removeprefix("tree-node-"))].append(int(value["rating"]))
    return {node_id: sum(r) / len(r) for node_id, r in sums.items()}


class DistillMode(TextChoices):
    """Which nodes a distillation set takes, by who did the work."""

    ALL = "", "every node"
    MACHINE = "machine", "machine trees' nodes"
    AUGMENTED = "augmented", "augmented trees' nodes"
    PERSON = "person", "person-answered nodes only"


@dataclass(frozen=True)
class DistillPreview:
    count: int
    rows: list[DistillRow]


def distillation_set(
    *, tree_ids: list[int] | None = None, mode: str = DistillMode.ALL,
    min_rating: float | None = None, rated_only: bool = False,
) -> Iterator[DistillRow]:  # fmt: skip
    """The distillation set in TRL's prompt/completion shape: every done node of every
    finished tree (or of `tree_ids`), as one row each.

    A row's prompt is the tree's answer prompt for the node's question, context included,
    built by amplification.prompts.answer_prompt — the function the expansion asks its
    answerer with — so the distilled model is trained on exactly what it will be shown as a
    tree's answerer; the completion is the node's final answer (a composed node's teaches it
    to give the amplified answer directly).

    Deduplicated: a prompt already written (its question's words, case and punctuation
    aside, under the same answer template and context) is not written again, so an imported
    copy of a tree, a memo hit or a sub-question asked again adds nothing; the first node in
    (tree, node) order wins. A node served from a memo entry that no longer qualifies (made
    under another context) is left out. Filters: `mode` (DistillMode), `min_rating` (a node
    with ratings is kept only if their mean reaches it) and `rated_only` (nodes nobody rated
    are left out; otherwise they are kept). The trees an iteration grew on its held-out
    questions are never in the set.
    """
    ratings = node_ratings() if min_rating is not None or rated_only else {}
    # An iteration's held-out answers are never trained on (amplification/iterations.py).
    trees = Tree.objects.filter(status=TreeStatus.DONE, iteration_role__in=["", "train"])
    if tree_ids is not None:
        trees = trees.filter(pk__in=tree_ids)
    nodes = Node.objects.filter(tree__in=trees, status=NodeStatus.DONE, memo_invalid="")
    if mode in (DistillMode.MACHINE, DistillMode.AUGMENTED):
        nodes = nodes.filter(tree__mode=mode)
    elif mode == DistillMode.PERSON:
        nodes = nodes.filter(answered_by=Author.PERSON)
    nodes = (
        nodes.select_related("tree")
        .only("question", "answer", "composed_answer", "resolution", "tree__context",
              "tree__answer_prompt")
        .order_by("tree_id", "pk")
    )  # fmt: skip
    written: set[bytes] = set()  # digests of the prompts so far: 32 bytes a row
    for node in nodes.iterator(chunk_size=500):
        answer = node.final_answer.strip()
        if not answer:
            continue
        rating = ratings.get(node.pk)
        if rating is None and rated_only:
            continue
        if min_rating is not None and rating is not None and rating < min_rating:
            continue
        tree = node.tree
        key = json.dumps([tree.answer_prompt, tree.context.strip(), words_key(node.question)])
        digest = hashlib.sha256(key.encode()).digest()
        if digest in written:
            continue
        written.add(digest)
        yield DistillRow(
            prompt=answer_prompt(tree, node.question), completion=answer,
            context=tree.context.strip(),
        )  # fmt: skip


def distillation_rows(
    *, tree_ids: list[int] | None, min_rating: float | None, mode: str = DistillMode.ALL,
    rated_only: bool = False,
) -> Iterator[str]:  # fmt: skip
    """The distillation set (distillation_set) as JSONL lines, one row each."""
    for row in distillation_set(
        tree_ids=tree_ids, mode=mode, min_rating=min_rating, rated_only=rated_only
    ):
        yield row.model_dump_json() + "\n"


def distillation_preview(
    *, tree_ids: list[int] | None = None, mode: str = DistillMode.ALL,
    min_rating: float | None = None, rated_only: bool = False, first: int = 3,
) -> DistillPreview:  # fmt: skip
    """How many rows the set has and its first `first`, as the download will write them."""
    count, rows = 0, []
    for row in distillation_set(
        tree_ids=tree_ids, mode=mode, min_rating=min_rating, rated_only=rated_only
    ):
        if count < first:
            rows.append(row)
        count += 1
    return DistillPreview(count, rows)
