"""Growing a tree: the worker side, run as Celery work on the `generation` queue.

One task expands a whole tree in steps. Each step, under the tree's row lock, resolves
memo hits and picks every node that can move — pending nodes to decompose or answer, stale
leaves to answer again, decomposed nodes whose children are all done to compose — marks them
running and commits. Then, outside any transaction, it makes one `generate_batch` call per
model config for all of them (siblings and cousins together), and applies the results under
the lock again. Budgets are checked under that lock, so they hold however steps interleave
with people's edits.

A run is claimed like a job row (`status=queued → running`, with an attempt number); every
write checks the attempt, so a worker given up on by the sweeper (no heartbeat for
TREE_STALE_AFTER) cannot overwrite the run that replaced it. A worker killed mid-step leaves
nodes marked running with no result; the next run puts them back to pending.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from amplification.memo import TreeKey, memo_find, memo_source, memo_store
from amplification.models import (
    MAX_ANSWER_CHARS,
    Author,
    MemoEntry,
    Mode,
    Node,
    NodeStatus,
    NodeVersion,
    Resolution,
    Tree,
    TreeStatus,
)
from amplification.parsing import answer_clean, question_key
from amplification.prompts import (
    Decomposition,
    answer_prompt,
    compose_prompt,
    copy_reason,
    decompose_prompt,
    decomposition_check,
)
from amplification.schemas import NodeCall, Step
from core.models import WebhookEvent
from core.streams import stream_send
from core.webhooks import webhook_emit
from llm.backends.base import Backend, ChatMessage, Completion, GenerationError
from llm.models import ModelConfig

logger = logging.getLogger(__name__)

# A step's batched call saves nothing until it returns; give a slow batch room before a
# silent run is taken for dead.
TREE_STALE_AFTER = timedelta(minutes=5)


class TreeSuperseded(Exception):
    """This worker's run was given up on and the tree's expansion started again."""


def backend_for(config: ModelConfig) -> Backend:
    """The live backend for a config (worker only: may load a model). Tests swap this."""
    from llm.generation import backend_for as llm_backend_for

    return llm_backend_for(config)


def tree_broadcast(tree_id: int) -> None:
    """Tell the tree's watchers to re-read it, once the current transaction commits."""
    transaction.on_commit(lambda: stream_send(f"tree-{tree_id}", {"type": "tree.changed"}))


def node_version_add(node: Node, *, reason: str, author: str, person: Any = None) -> None:
    """Record the node as it now is (call after setting its fields, before saving it)."""
    node.version += 1
    NodeVersion.objects.create(
        node=node, number=node.version, question=node.question, answer=node.final_answer,
        resolution=node.resolution, reason=reason[:200], author=author, person=person,
    )  # fmt: skip


@dataclass
class Job:
    node: Node
    step: Step
    config: ModelConfig
    prompt: str
    reason: str = ""
    # Nodes asking the same question in the same step: they reuse this call's answer.
    followers: list[Node] = field(default_factory=list)
    # A decompose job: the sub-questions its prompt shows as examples (the copy guard drops
    # copies of them), the attempt (1: the resample) and what the first attempt kept.
    examples: tuple[str, ...] = ()
    attempt: int = 0
    first: Decomposition | None = None


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    memo_hits: int = 0


def _locked_run(tree_id: int, attempt: int) -> Tree:
    tree = (
        # of=self: lock the tree only, not the model configs other trees share.
        Tree.objects.select_for_update(of=("self",))
        .select_related("decompose_config", "answer_config", "compose_config")
        .get(pk=tree_id)
    )
    if tree.attempt != attempt or tree.status != TreeStatus.RUNNING:
        raise TreeSuperseded(f"tree {tree_id} is no longer on attempt {attempt}")
    tree.heartbeat_at = timezone.now()
    Tree.objects.filter(pk=tree_id).update(heartbeat_at=tree.heartbeat_at)
    return tree


def tree_expand(*, tree_id: int) -> None:
    """Expand a queued tree until nothing can move. A second delivery finds nothing queued."""
    with transaction.atomic():
        # Claim and read the attempt number in one locked step: another claim cannot slip in
        # between and lend this run its number.
        tree = Tree.objects.select_for_update().filter(pk=tree_id, status=TreeStatus.QUEUED).first()
        if tree is None:
            return
        now = timezone.now()
        attempt = tree.attempt + 1
        Tree.objects.filter(pk=tree_id).update(
            status=TreeStatus.RUNNING, attempt=attempt, heartbeat_at=now, run_started_at=now,
            error="",
        )  # fmt: skip
    try:
        with transaction.atomic():
            _locked_run(tree_id, attempt)
            # What a killed worker left: nodes marked running whose call never returned.
            Node.objects.filter(
                tree_id=tree_id, status=NodeStatus.RUNNING, resolution=Resolution.NONE
            ).update(status=NodeStatus.PENDING)
            tree_broadcast(tree_id)
        while True:
            with transaction.atomic():
                tree = _locked_run(tree_id, attempt)
                plan = _plan(tree)
                if not plan.jobs and not plan.memo_hits:
                    _finish(tree)
                    tree_broadcast(tree_id)
                    return
                tree_broadcast(tree_id)
            if plan.jobs:
                results = _generate(plan.jobs)
                with transaction.atomic():
                    tree = _locked_run(tree_id, attempt)
                    again = [
                        resample for job, result in zip(plan.jobs, results, strict=True)
                        if (resample := _apply(tree, job, result)) is not None
                    ]  # fmt: skip
                    tree_broadcast(tree_id)
                if again:
                    # The copy guard's resamples: one more batched call for the whole step.
                    results = _generate(again)
                    with transaction.atomic():
                        tree = _locked_run(tree_id, attempt)
                        for job, result in zip(again, results, strict=True):
                            _apply(tree, job, result)
                        tree_broadcast(tree_id)
    except TreeSuperseded:
        logger.warning("tree %s: attempt %s was superseded; stopping", tree_id, attempt)
    except Exception as error:
        # A bug, not a model failure: stop here rather than be swept and crash again forever.
        Tree.objects.filter(pk=tree_id, attempt=attempt, status=TreeStatus.RUNNING).update(
            status=TreeStatus.FAILED, error=f"expansion stopped: {type(error).__name__}"
        )
        raise


def _finish(tree: Tree) -> None:
    nodes = list(tree.nodes.all())
    root = next(node for node in nodes if node.parent_id is None)
    waiting = [n for n in nodes if n.status in (NodeStatus.PENDING, NodeStatus.STALE)]
    failed = [n for n in nodes if n.status == NodeStatus.FAILED]
    if root.status == NodeStatus.DONE and not waiting and not failed:
        status, error = TreeStatus.DONE, ""
    elif any(n.held or n.taken_by_id for n in waiting):
        status, error = TreeStatus.WAITING, ""
    else:
        status = TreeStatus.FAILED
        error = f"{len(failed)} node(s) failed; retry them to go on." if failed else "stuck"
    started = tree.run_started_at or timezone.now()
    Tree.objects.filter(pk=tree.pk).update(
        status=status, error=error,
        wall_s=F("wall_s") + (timezone.now() - started).total_seconds(),
    )  # fmt: skip
    if status == TreeStatus.DONE:
        webhook_emit(event=WebhookEvent.TREE_DONE, payload={"tree_id": tree.pk})


def _plan(tree: Tree) -> Plan:
    """Under the tree's lock: apply memo hits, choose this step's model calls, mark them
    running.

    Identical questions answered in the same step share one call (the others follow it and
    become memo hits of it). A node that would be decomposed waits for a twin being worked
    on elsewhere in the tree, which saves a whole subtree; a leaf does not wait, since its
    twin's answer may be many steps away and the leaf's own call rides in this step's batch.
    Composes are chosen after every memo hit of the step, so a parent whose last child was
    a hit composes now rather than a step later.
    """
    nodes = list(tree.nodes.all())
    by_id = {node.pk: node for node in nodes}
    children: dict[int, list[Node]] = defaultdict(list)
    for node in nodes:
        if node.parent_id is not None:
            children[node.parent_id].append(node)
    plan = Plan()
    followers: list[Node] = []
    answering: dict[str, Job] = {}
    room = tree.max_nodes - len(nodes)
    key = TreeKey.of(tree)
    busy_keys = {
        question_key(node.question): node.pk
        for node in sorted(nodes, key=lambda n: -n.pk)
        if node.status in (NodeStatus.PENDING, NodeStatus.RUNNING, NodeStatus.STALE)
        and node.resolution in (Resolution.NONE, Resolution.DECOMPOSED)
    }

    def ancestors(node: Node) -> set[int]:
        found = set()
        while node.parent_id is not None:
            found.add(node.parent_id)
            node = by_id[node.parent_id]
        return found

    for node in nodes:
        if node.held or node.taken_by_id:
            continue
        if node.status in (NodeStatus.PENDING, NodeStatus.STALE) and (
            node.resolution == Resolution.NONE
        ):
            asked = question_key(node.question)
            reusable = node.parent_id is not None and not node.skip_memo
            if reusable:
                entry = memo_find(key, node.question)
                if entry is not None:
                    _memo_apply(node, entry)
                    plan.memo_hits += 1
                    continue
            if node.direct_reason:
                reason = node.direct_reason
            elif node.depth >= tree.max_depth:
                reason = "max depth reached"
            elif room <= 0:
                # Every decomposition planned this step may add at least one node.
                reason = "max nodes reached"
            else:
                reason = ""
            if reason:
                if reusable and asked in answering:
                    answering[asked].followers.append(node)
                    followers.append(node)
                    continue
                job = _answer_job(tree, node, reason)
                answering.setdefault(asked, job)
                plan.jobs.append(job)
                continue
            twin = busy_keys.get(asked)
            if reusable and twin is not None and twin != node.pk and twin not in ancestors(node):
                continue
            plan.jobs.append(_decompose_job(tree, node))
            room -= 1
        elif node.status == NodeStatus.STALE and node.resolution in (
            Resolution.ANSWERED, Resolution.MEMO,
        ):  # fmt: skip
            plan.jobs.append(_answer_job(tree, node, "re-run"))
    for node in nodes:
        if node.resolution == Resolution.DECOMPOSED and node.status in (
            NodeStatus.RUNNING, NodeStatus.STALE,
        ) and not (node.held or node.taken_by_id):  # fmt: skip
            kids = sorted(children[node.pk], key=lambda n: n.position)
            if kids and all(kid.status == NodeStatus.DONE for kid in kids):
                pairs = [(kid.question, kid.final_answer) for kid in kids]
                prompt = compose_prompt(tree, node.question, pairs)
                plan.jobs.append(Job(node, "compose", tree.compose_config, prompt))
    for running in [*(job.node for job in plan.jobs), *followers]:
        running.status = NodeStatus.RUNNING
        running.error = ""
        running.save(update_fields=["status", "error", "updated_at"])
    return plan


def _answer_job(tree: Tree, node: Node, reason: str) -> Job:
    prompt = answer_prompt(tree, node.question)
    return Job(node, "answer", tree.answer_config, prompt, reason=reason)


def _decompose_job(tree: Tree, node: Node, *, attempt: int = 0) -> Job:
    built = decompose_prompt(tree, node.question, attempt=attempt)
    return Job(
        node, "decompose", tree.decompose_config, built.text,
        examples=built.example_subquestions, attempt=attempt,
    )  # fmt: skip


def _memo_apply(node: Node, entry: MemoEntry) -> None:
    node.resolution = Resolution.MEMO
    node.answer = entry.answer
    node.memo_forget()
    node.memo_origin_id = entry.node_id
    node.memo_source = memo_source(entry).model_dump(mode="json")
    node.status = NodeStatus.DONE
    node.answered_by = Author.MODEL
    node_version_add(node, reason="memo hit", author=Author.MODEL)
    node.save()
    MemoEntry.objects.filter(pk=entry.pk).update(hits=F("hits") + 1)


@dataclass
class Result:
    completion: Completion | None
    call: NodeCall | None
    error: str = ""
    # Cut short because it was no longer wanted (a draft whose node was answered first).
    stopped: bool = False


def _chat(config: ModelConfig, prompt: str) -> list[ChatMessage]:
    from llm.generation import chat_messages

    return chat_messages(config, prompt)


def _generate(jobs: Sequence[Job], *, wanted: Callable[[], bool] | None = None) -> list[Result]:
    """One batched call per model config for the whole step (no transaction held). With
    `wanted`, the calls stream and stop as soon as `wanted()` turns false (asked every
    DRAFT_CHECK_EVERY_S); what was generated until then is returned as stopped results, and
    a later config's call is not made at all."""
    results: list[Result | None] = [None] * len(jobs)
    groups: dict[int, list[int]] = defaultdict(list)
    for index, job in enumerate(jobs):
        groups[job.config.pk].append(index)
    for indexes in groups.values():
        config = jobs[indexes[0]].config
        params = config.generation_params()
        chats = [_chat(config, jobs[i].prompt) for i in indexes]
        try:
            if wanted is None:
                done = backend_for(config).generate_batch(chats, params=params)
                outputs = [_Streamed(c.text, c.usage.completion_tokens, c) for c in done]
            else:
                outputs = _streamed(backend_for(config), chats, params, wanted)
        except (GenerationError, ValueError) as error:  # ValueError: params a config forbids
            for i in indexes:
                results[i] = Result(None, None, error=str(error))
            continue
        at = timezone.now().isoformat()
        for i, output in zip(indexes, outputs, strict=True):
            usage = output.completion.usage if output.completion else None
            call = NodeCall(
                step=jobs[i].step, config=config.name, model=config.model,
                params={k: list(v) if isinstance(v, tuple) else v
                        for k, v in asdict(params).items()},
                system_prompt=config.system_prompt, prompt=jobs[i].prompt,
                raw_output=output.text,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else output.tokens,
                batch_size=len(indexes),
                latency_s=usage.total_s if usage else output.elapsed_s,
                at=at, stopped=output.completion is None,
            )  # fmt: skip
            results[i] = Result(output.completion, call, stopped=output.completion is None)
        if any(result is not None and result.stopped for result in results):
            break
    return [result for result in results if result is not None]


@dataclass
class _Streamed:
    """One row of a call: its text, tokens, and the completion once it finished (None when
    the call was stopped first)."""

    text: str = ""
    tokens: int = 0
    completion: Completion | None = None
    elapsed_s: float = 0.0


def _streamed(
    backend: Backend, chats: list[list[ChatMessage]], params: Any, wanted: Callable[[], bool]
) -> list[_Streamed]:
    rows = [_Streamed() for _ in chats]
    started = checked = time.monotonic()
    stream = backend.stream_batch(chats, params=params)
    try:
        for row_chunk in stream:
            row, chunk = rows[row_chunk.row], row_chunk.chunk
            row.text += chunk.text
            row.tokens += chunk.tokens
            if chunk.usage is not None:
                row.completion = Completion(row.text, chunk.usage, chunk.finish_reason or "stop")
            now = time.monotonic()
            if now - checked >= DRAFT_CHECK_EVERY_S:
                checked = now
                if not wanted():
                    break
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # a generator: stops the model between two tokens
    for row in rows:
        row.elapsed_s = time.monotonic() - started
    return rows


def _record(node: Node, call: NodeCall) -> None:
    node.calls = [*node.calls, call.model_dump(mode="json")]
    node.prompt_tokens = (node.prompt_tokens or 0) + call.prompt_tokens
    node.completion_tokens = (node.completion_tokens or 0) + call.completion_tokens
    node.total_s = (node.total_s or 0.0) + call.latency_s


def _apply(tree: Tree, job: Job, result: Result) -> Job | None:
    """Under the tree's lock: write one call's result onto its node. Returns the resample
    to make when the copy guard left a first decomposition too few sub-questions."""
    followers = Node.objects.filter(pk__in=[f.pk for f in job.followers], status=NodeStatus.RUNNING)
    node = Node.objects.filter(pk=job.node.pk, status=NodeStatus.RUNNING).first()
    if node is None:
        # Removed or reset by an edit while the call ran; its followers ask again next step.
        followers.update(status=NodeStatus.PENDING)
        return None
    if result.call is None or result.completion is None:
        node.status, node.error = NodeStatus.FAILED, result.error
        node.save(update_fields=["status", "error", "updated_at"])
        followers.update(status=NodeStatus.FAILED, error=result.error)
        return None
    _record(node, result.call)
    text = result.completion.text
    if job.step == "decompose":
        return _decomposition_apply(tree, node, job, text)
    if job.step == "answer":
        node.answer = answer_clean(text, limit=MAX_ANSWER_CHARS)
        node.resolution = Resolution.ANSWERED
        node.answered_by = Author.MODEL
        node.direct_reason = job.reason if job.reason != "re-run" else node.direct_reason
        node.memo_forget()
        node.skip_memo = False
        node.status = NodeStatus.DONE
        node_version_add(node, reason=f"answered directly ({job.reason})", author=Author.MODEL)
        node.save()
        entry = memo_store(TreeKey.of(tree), node)
        for follower in followers:
            _memo_apply(follower, entry)
    else:
        node.composed_answer = answer_clean(text, limit=MAX_ANSWER_CHARS)
        node.answered_by = Author.MODEL
        node.status = NodeStatus.DONE
        node_version_add(node, reason="composed from its children", author=Author.MODEL)
        node.save()
        memo_store(TreeKey.of(tree), node)
    return None


def children_create(tree: Tree, node: Node, questions: list[str], *, held: bool) -> list[Node]:
    """Under the tree's lock: add children after the node's last one."""
    start = node.children.count()
    kids = [
        Node(tree=tree, parent=node, position=start + offset, depth=node.depth + 1,
             question=question, held=held)
        for offset, question in enumerate(questions)
    ]  # fmt: skip
    Node.objects.bulk_create(kids)
    return kids


def _decomposition_apply(tree: Tree, node: Node, job: Job, raw: str) -> Job | None:
    room = tree.max_nodes - tree.nodes.count()
    limit = min(tree.max_children, room)
    checked = decomposition_check(
        raw, parent_question=node.question, examples=job.examples, limit=max(limit, 0),
        siblings=tuple(node.children.values_list("question", flat=True)),
    )  # fmt: skip
    if checked.needs_resample and job.attempt == 0 and limit > 0:
        node.save(update_fields=["calls", "prompt_tokens", "completion_tokens", "total_s",
                                 "updated_at"])  # fmt: skip
        resample = _decompose_job(tree, node, attempt=1)
        resample.first = checked
        return resample
    questions = checked.kept
    if job.first is not None and checked.needs_resample:
        node.direct_reason = copy_reason(job.first, checked)
        questions = []
    if not questions:
        # Answered directly in the next step; the reason says why.
        node.direct_reason = node.direct_reason or (
            "max nodes reached" if limit <= 0 else "no sub-questions could be parsed"
        )
        node.status = NodeStatus.PENDING
        node.save()
        return None
    node.resolution = Resolution.DECOMPOSED
    node.decomposed_by = Author.MODEL
    node.status = NodeStatus.RUNNING  # waiting for its children
    node.save()
    held = tree.mode == Mode.AUGMENTED and tree.hold_new_nodes
    children_create(tree, node, questions, held=held)
    return None


# --- drafts for people (augmented mode) -----------------------------------------------------
# How often a draft being generated asks whether it is still wanted.
DRAFT_CHECK_EVERY_S = 0.5


def _draft_wanted(node_id: int, attempt: int) -> bool:
    """The take this draft was made for still stands: the node is taken, on this take's
    number, and nobody has answered, decomposed or handed it on."""
    return Node.objects.filter(
        pk=node_id, draft_attempt=attempt, taken_by__isnull=False,
        status__in=(NodeStatus.PENDING, NodeStatus.STALE),
    ).exists()  # fmt: skip


def node_draft(*, node_id: int, attempt: int) -> None:
    """The model's suggestion for a node a person took: an answer and a decomposition.

    Fenced by the take's number (`Node.draft_attempt`), as a speech by its attempt: a draft
    whose node was answered, decomposed, handed to the model or taken again before it began
    is dropped without a model call, and one being generated stops within
    DRAFT_CHECK_EVERY_S of that, so an obsolete draft never holds the generation worker.
    What the calls cost (finished or stopped) is recorded on the node and the tree's wall
    time, like every other model call of the tree; the draft's text is written only if its
    take still stands.
    """
    node = (
        Node.objects.select_related("tree", "tree__decompose_config", "tree__answer_config")
        .filter(pk=node_id)
        .first()
    )
    if node is None or not _draft_wanted(node_id, attempt):
        return
    tree = node.tree
    answer_job = _answer_job(tree, node, "draft")
    answer_job.step = "draft-answer"
    decompose_job = _decompose_job(tree, node)
    decompose_job.step = "draft-decompose"
    jobs = [answer_job, decompose_job]
    started = time.monotonic()
    results = _generate(jobs, wanted=lambda: _draft_wanted(node_id, attempt))
    spent = time.monotonic() - started
    # Stopped: a call cut short, or (configs differ) the second call never made.
    stopped = len(results) < len(jobs) or any(result.stopped for result in results)
    answer, decomposition = ("", "")
    if not stopped:
        answer, decomposition = (r.completion.text if r.completion else "" for r in results)
    # The copy guard as in a run, without the resample: a person reads the draft.
    subquestions = decomposition_check(
        decomposition, parent_question=node.question, examples=decompose_job.examples,
        limit=tree.max_children,
    ).kept  # fmt: skip
    with transaction.atomic():
        if Tree.objects.select_for_update().filter(pk=tree.pk).first() is None:
            return  # deleted meanwhile, and its cost with it
        Tree.objects.filter(pk=tree.pk).update(wall_s=F("wall_s") + spent)
        current = Node.objects.filter(pk=node_id).first()
        if current is None:  # removed meanwhile: only the tree's wall time keeps the cost
            return
        for result in results:
            if result.call is not None:
                _record(current, result.call)
        fields = ["calls", "prompt_tokens", "completion_tokens", "total_s"]
        if not stopped and _draft_wanted(node_id, attempt):
            current.draft_answer = (
                answer_clean(answer, limit=MAX_ANSWER_CHARS) or "(the model gave none)"
            )
            current.draft_subquestions = "\n".join(subquestions)
            fields += ["draft_answer", "draft_subquestions"]
        current.save(update_fields=[*fields, "updated_at"])
        tree_broadcast(tree.pk)


# --- the sweeper ----------------------------------------------------------------------------
def trees_requeue_stale(*, now: datetime | None = None) -> list[int]:
    """Put back in the queue every running tree whose worker has been silent for
    TREE_STALE_AFTER (killed mid-step, or its machine gone); returns their ids, committed, for
    the caller to send (amplification.tasks: worker code sends no task). Each tree is locked
    and checked again, so two sweeps at once requeue a tree once. Run by beat every minute."""
    cutoff = (now or timezone.now()) - TREE_STALE_AFTER
    requeued = []
    stale = Tree.objects.filter(status=TreeStatus.RUNNING, heartbeat_at__lt=cutoff)
    for tree_id in list(stale.values_list("pk", flat=True)):
        with transaction.atomic():
            tree = stale.select_for_update().filter(pk=tree_id).first()
            if tree is not None:
                Tree.objects.filter(pk=tree_id).update(status=TreeStatus.QUEUED)
                tree_broadcast(tree_id)
                requeued.append(tree_id)
    return requeued
