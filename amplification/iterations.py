"""Iterated amplification, the loop closed: a line of iterations, each one amplify → distil.

  iteration 1: finished trees grown with the base as helper
  → distil them into a new model (amplification.distil, an SFT TrainingRun in llm)
  → on the held-out questions, three answers: the helper directly, the helper amplified by a
    tree, the distilled model directly (each one a tree: a direct answer is a tree of depth 0,
    asked with the answer prompt the distilled model was trained on)
  → blind pairs of them in a pairwise queue (sides drawn at random), win rates with intervals
  → iteration k+1 grows trees on iteration k's training questions with iteration k's
    distilled model as the helper, and goes round again.

Services (each one transaction, ValidationError and nothing changed on bad input) and the one
selector the page and its tests read (`iteration_line_overview`). Trees grow through
amplification.services.tree_create, training through amplification.distil.distil_start.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from amplification.distil import distil_start
from amplification.models import (
    MAX_QUESTION_CHARS,
    Comparison,
    Iteration,
    IterationLine,
    IterationPair,
    IterationRole,
    JudgeStatus,
    Mode,
    Tree,
    TreeStatus,
)
from amplification.parsing import words_key
from amplification.services import tree_create
from annotations.kinds import PairwisePayload, QueueKind
from annotations.models import Item, Label, Queue
from annotations.services import NewItem, queue_items_create
from core.stats import Share
from core.text import text_problem
from llm.models import Backend, ModelConfig, TrainingRun, TrainingStatus
from llm.schemas import SFTHyperparameters

if TYPE_CHECKING:
    from amplification.iteration_judge import IterationJudge

MAX_HELD_OUT = 100
# The roles each comparison sets against each other, first against second.
COMPARED: dict[str, tuple[str, str]] = {
    Comparison.AMPLIFIED_DIRECT: (IterationRole.AMPLIFIED, IterationRole.DIRECT),
    Comparison.DISTILLED_AMPLIFIED: (IterationRole.DISTILLED, IterationRole.AMPLIFIED),
    Comparison.DISTILLED_DIRECT: (IterationRole.DISTILLED, IterationRole.DIRECT),
}
HELD_OUT_ROLES = (IterationRole.DIRECT, IterationRole.AMPLIFIED, IterationRole.DISTILLED)
WIN_METHOD = (
    "Per held-out question, the side most votes prefer wins (ties, both-bad votes and "
    "evenly split questions are left out); the share of those questions the first side "
    "wins, with a Wilson 95 % interval over questions (the independent unit)."
)


def _questions(lines: list[str]) -> list[str]:
    out, seen = [], set()
    for number, line in enumerate(lines, start=1):
        question = line.strip()
        if not question:
            continue
        problem = text_problem(question)
        if problem:
            raise ValidationError(f"Held-out question {number}: {problem}.")
        if len(question) > MAX_QUESTION_CHARS:
            raise ValidationError(
                f"Held-out question {number} is longer than {MAX_QUESTION_CHARS} characters."
            )
        if words_key(question) not in seen:
            seen.add(words_key(question))
            out.append(question)
    return out


def _overlap_check(held_out: list[str], training: list[str]) -> None:
    """An eval set that shares a question with the training trees measures nothing."""
    trained = {words_key(q) for q in training}
    shared = [q for q in held_out if words_key(q) in trained]
    if shared:
        raise ValidationError(
            f"{len(shared)} held-out question(s) are also training questions, e.g. "
            f"“{shared[0][:120]}”: held-out questions must not be trained on."
        )


def iteration_line_create(
    *, name: str, base: ModelConfig, held_out: list[str], trees: list[Tree], user: User,
    max_depth: int = 1, max_children: int = 3, max_nodes: int = 7,
) -> IterationLine:  # fmt: skip
    """A line whose iteration 1 is `trees` (finished, in no other line) with `base` as
    helper. Refused: no trees, a tree not finished or already in a line, a base that is not a
    local model, no held-out question, or a held-out question that a tree was grown on."""
    questions = _questions(held_out)
    if not questions:
        raise ValidationError("Give at least one held-out question.")
    if len(questions) > MAX_HELD_OUT:
        raise ValidationError(f"At most {MAX_HELD_OUT} held-out questions.")
    if base.backend != Backend.TRANSFORMERS:
        raise ValidationError(f"{base.name} is not a local model: it cannot be fine-tuned.")
    if not trees:
        raise ValidationError("Choose the finished trees of iteration 1.")
    with transaction.atomic():
        locked = list(Tree.objects.select_for_update().filter(pk__in=[t.pk for t in trees]))
        unfinished = [t.pk for t in locked if t.status != TreeStatus.DONE]
        if unfinished:
            raise ValidationError(f"Tree(s) {', '.join(map(str, unfinished))} are not finished.")
        taken = [t.pk for t in locked if t.iteration_id is not None]
        if taken:
            raise ValidationError(f"Tree(s) {', '.join(map(str, taken))} are already in a line.")
        _overlap_check(questions, [t.question for t in locked])
        line = IterationLine(
            name=name.strip(), base=base, held_out=questions, max_depth=max_depth,
            max_children=max_children, max_nodes=max_nodes, created_by=user,
        )  # fmt: skip
        line.full_clean(exclude=["created_by"])
        line.save()
        first = Iteration.objects.create(line=line, number=1, helper=base)
        Tree.objects.filter(pk__in=[t.pk for t in locked]).update(
            iteration=first, iteration_role=IterationRole.TRAIN
        )
    return line


def _locked_iteration(iteration_id: int) -> Iteration:
    return Iteration.objects.select_for_update().select_related("line").get(pk=iteration_id)


def _distilled(iteration: Iteration) -> ModelConfig:
    run = iteration.training_run
    if run is None or run.status != TrainingStatus.DONE or run.result is None:
        raise ValidationError(
            f"Iteration {iteration.number} has no distilled model yet: distil it first."
        )
    return run.result


def _training_trees(iteration: Iteration) -> list[Tree]:
    return list(iteration.trees.filter(iteration_role=IterationRole.TRAIN).order_by("pk"))


def iteration_distil(
    *, iteration_id: int, hyperparameters: SFTHyperparameters, user: User
) -> TrainingRun:
    """Distil an iteration's finished training trees into a new model, fine-tuned from its
    helper. Refused while a run of it is queued, running or done, or while a training tree
    is still growing (its rows would be missing); the rules of distil_start otherwise."""
    with transaction.atomic():
        iteration = _locked_iteration(iteration_id)
        run = iteration.training_run
        if run is not None and run.status != TrainingStatus.FAILED:
            raise ValidationError(f"Iteration {iteration.number} is already distilled ({run}).")
        trees = _training_trees(iteration)
        growing = [t.pk for t in trees if t.status != TreeStatus.DONE]
        if growing or not trees:
            raise ValidationError(
                "Every training tree of the iteration must be finished before distilling "
                f"(still growing: {', '.join(map(str, growing)) or 'no trees yet'})."
            )
        run = distil_start(
            base=iteration.helper, user=user, hyperparameters=hyperparameters,
            name=f"{iteration.line.name} · iteration {iteration.number}",
            tree_ids=[t.pk for t in trees],
        )  # fmt: skip
        iteration.training_run = run
        iteration.save(update_fields=["training_run"])
    return run


def _grow(
    line: IterationLine, iteration: Iteration, question: str, *, config: ModelConfig,
    role: str, depth: int, user: User,
) -> Tree:  # fmt: skip
    tree = Tree(
        question=question, decompose_config=config, answer_config=config, compose_config=config,
        max_depth=depth, max_children=line.max_children, max_nodes=line.max_nodes,
        mode=Mode.MACHINE, iteration=iteration, iteration_role=role,
    )  # fmt: skip
    return tree_create(tree=tree, created_by=user)


def iteration_evaluate(*, iteration_id: int, user: User) -> int:
    """Grow the held-out answers of an iteration whose distilled model exists: for each
    held-out question, the helper directly, the helper amplified, the distilled model
    directly. Returns how many trees were started; refused if they already were."""
    with transaction.atomic():
        iteration = _locked_iteration(iteration_id)
        distilled = _distilled(iteration)
        if iteration.trees.exclude(iteration_role=IterationRole.TRAIN).exists():
            raise ValidationError(f"Iteration {iteration.number}'s held-out answers exist.")
        line = iteration.line
        started = 0
        for question in line.held_out:
            for role, config, depth in (
                (IterationRole.DIRECT, iteration.helper, 0),
                (IterationRole.AMPLIFIED, iteration.helper, line.max_depth),
                (IterationRole.DISTILLED, distilled, 0),
            ):
                _grow(line, iteration, question, config=config, role=role, depth=depth,
                      user=user)  # fmt: skip
                started += 1
    return started


def iteration_next(*, iteration_id: int, user: User) -> Iteration:
    """Start iteration k+1: its helper is iteration k's distilled model, and it grows trees on
    iteration k's training questions with it (machine mode, the line's budget)."""
    with transaction.atomic():
        iteration = _locked_iteration(iteration_id)
        distilled = _distilled(iteration)
        line = iteration.line
        try:
            with transaction.atomic():
                following = Iteration.objects.create(
                    line=line, number=iteration.number + 1, helper=distilled
                )
        except IntegrityError:
            raise ValidationError(f"Iteration {iteration.number + 1} already exists.") from None
        for tree in _training_trees(iteration):
            _grow(line, following, tree.question, config=distilled, role=IterationRole.TRAIN,
                  depth=line.max_depth, user=user)  # fmt: skip
    return following


def iteration_to_queue(*, iteration_id: int, queue: Queue) -> int:
    """Put an iteration's held-out answers, in blind pairs, into a pairwise queue: for each
    question, amplified vs direct, distilled vs amplified and distilled vs direct, each with
    its sides drawn at random. Refused until every held-out tree is finished; a pair already
    queued is not queued again. Returns how many items were added."""
    if queue.kind != QueueKind.PAIRWISE:
        raise ValidationError("Choose a pairwise queue.")
    with transaction.atomic():
        iteration = _locked_iteration(iteration_id)
        answers = _held_out_answers(iteration)
        if not answers:
            raise ValidationError("Grow the held-out answers first.")
        waiting = [q for q, by_role in answers.items()
                   if any(by_role.get(r) is None or by_role[r].status != TreeStatus.DONE
                          for r in HELD_OUT_ROLES)]  # fmt: skip
        if waiting:
            raise ValidationError(
                f"{len(waiting)} held-out question(s) still have answers growing."
            )
        queued = set(iteration.pairs.filter(item__queue=queue)
                     .values_list("question", "comparison"))  # fmt: skip
        chosen: list[tuple[str, str, str, NewItem]] = []
        for index, question in enumerate(iteration.line.held_out):
            by_role = answers[question]
            for comparison, (first, second) in COMPARED.items():
                if (question, comparison) in queued:
                    continue
                a, b = (first, second) if random.random() < 0.5 else (second, first)
                text_a = _answer(by_role[a]) or "(no answer)"
                text_b = _answer(by_role[b]) or "(no answer)"
                external_id = f"iteration-{iteration.pk}-q{index}-{comparison}"
                payload = PairwisePayload(prompt=question, response_a=text_a, response_b=text_b)
                chosen.append((question, comparison, a,
                               NewItem(payload=payload, external_id=external_id)))  # fmt: skip
        if not chosen:
            return 0
        added = queue_items_create(queue=queue, items=[c[3] for c in chosen], skip_existing=True)
        items = dict(Item.objects.filter(queue=queue, external_id__in=[
            c[3].external_id for c in chosen]).values_list("external_id", "pk"))  # fmt: skip
        IterationPair.objects.bulk_create(
            IterationPair(iteration=iteration, question=q, comparison=comparison, a_role=a,
                          item_id=items[new.external_id])
            for q, comparison, a, new in chosen if new.external_id in items
        )  # fmt: skip
    return added


def _answer(tree: Tree) -> str:
    root = tree.nodes.filter(parent=None).first()
    return root.final_answer.strip() if root is not None else ""


def _held_out_answers(iteration: Iteration) -> dict[str, dict[str, Tree]]:
    found: dict[str, dict[str, Tree]] = defaultdict(dict)
    for tree in iteration.trees.exclude(iteration_role=IterationRole.TRAIN).order_by("pk"):
        found[tree.question][tree.iteration_role] = tree
    return found


# --- the page's reading -----------------------------------------------------------------
@dataclass(frozen=True)
class HeldOutRow:
    question: str
    trees: dict[str, Tree | None]
    answers: dict[str, str]


@dataclass(frozen=True)
class WinRate:
    comparison: str
    label: str
    first: str
    second: str
    share: Share
    votes: int
    ties: int


@dataclass
class IterationView:
    iteration: Iteration
    trees: list[Tree]
    trees_done: int
    run: TrainingRun | None
    held_out: list[HeldOutRow] = field(default_factory=list)
    held_out_done: bool = False
    win_rates: list[WinRate] = field(default_factory=list)
    pairs: int = 0
    judge: IterationJudge | None = None  # the reward-model judge, once there are pairs

    @property
    def busy(self) -> bool:
        """Something of this iteration is still growing, training or being scored."""
        trees = [*self.trees, *(t for row in self.held_out for t in row.trees.values() if t)]
        growing = any(t.status not in (TreeStatus.DONE, TreeStatus.FAILED) for t in trees)
        scoring = self.judge is not None and self.judge.status == JudgeStatus.QUEUED
        return growing or scoring or (self.run is not None and self.run.running)

    @property
    def rows(self) -> list[tuple[WinRate, Share | None]]:
        """Each comparison: people's win rate, and the reward model's (None: not scored)."""
        judged = self.judge.rates if self.judge is not None else {}
        return [(w, judged.get(w.comparison)) for w in self.win_rates]

    @property
    def distilled(self) -> ModelConfig | None:
        run = self.run
        return run.result if run is not None and run.status == TrainingStatus.DONE else None


def win_rates(iteration: Iteration) -> list[WinRate]:
    """Each comparison's win rate from people's blind votes (method: WIN_METHOD)."""
    pairs = list(iteration.pairs.all())
    votes: dict[int, list[str]] = defaultdict(list)
    for item_id, value in Label.objects.filter(
        item_id__in=[p.item_id for p in pairs], is_gold=False
    ).values_list("item_id", "value"):
        votes[item_id].append(str(value.get("choice", "")))
    # (comparison, question) → [first-side votes, second-side votes]
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    counted: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # comparison → votes, ties
    for pair in pairs:
        first = COMPARED[pair.comparison][0]
        for choice in votes[pair.item_id]:
            counted[pair.comparison][0] += 1
            if choice not in ("a", "b"):
                counted[pair.comparison][1] += 1
                continue
            side_a_first = pair.a_role == first
            first_wins = (choice == "a") == side_a_first
            tally[(pair.comparison, pair.question)][0 if first_wins else 1] += 1
    out = []
    for comparison, (first, second) in COMPARED.items():
        won = decided = 0
        for (name, _question), (for_first, for_second) in tally.items():
            if name != comparison or for_first == for_second:
                continue
            decided += 1
            won += for_first > for_second
        out.append(WinRate(
            comparison=comparison, label=Comparison(comparison).label,
            first=IterationRole(first).label, second=IterationRole(second).label,
            share=Share(won, decided), votes=counted[comparison][0], ties=counted[comparison][1],
        ))  # fmt: skip
    return out


def iteration_line_overview(line: IterationLine) -> list[IterationView]:
    """Every iteration of a line, first to last: its training trees, its distillation run,
    its held-out answers side by side, its win rates and its reward-model judge's."""
    # Imported here: amplification.iteration_judge reads this module's COMPARED.
    from amplification.iteration_judge import iteration_judge

    views = []
    for iteration in line.iterations.select_related("helper", "training_run__result"):
        trees = list(iteration.trees.order_by("pk"))
        train = [t for t in trees if t.iteration_role == IterationRole.TRAIN]
        view = IterationView(
            iteration=iteration, trees=train, run=iteration.training_run,
            trees_done=sum(1 for t in train if t.status == TreeStatus.DONE),
        )  # fmt: skip
        answers = _held_out_answers(iteration)
        if answers:
            for question in line.held_out:
                by_role = answers.get(question, {})
                view.held_out.append(HeldOutRow(
                    question=question, trees={r: by_role.get(r) for r in HELD_OUT_ROLES},
                    answers={r: _answer(t) for r, t in by_role.items()
                             if t.status == TreeStatus.DONE},
                ))  # fmt: skip
            view.held_out_done = all(
                t is not None and t.status == TreeStatus.DONE
                for row in view.held_out for t in row.trees.values()
            )  # fmt: skip
        view.pairs = iteration.pairs.count()
        if view.pairs:
            view.win_rates = win_rates(iteration)
            view.judge = iteration_judge(iteration)
        views.append(view)
    return views
