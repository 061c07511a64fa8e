"""The automatic judge: for every judged or finished debate, researchers (never the judge) see
P(A correct) from a reward model — each side's text scored with one version, and
P(A) = σ(r_A − r_B).

Debates belong to the debate app, which rewards does not import: debate registers a
`DebateTextsProvider` from its AppConfig.ready() (the way it registers its item kind with
annotations) saying which debates are over and what each side said. Each side is scored as
the pair (question, that side's answer and then its speeches, in order), through the same
`version_rewards` as the scoring API, in the worker: a beat task every minute and a task after
each promotion or roll back score the debates that have no score from the version the rule
below picks, a bounded batch at a time. Scores are rows per (version, debate), so a newly
promoted version's numbers replace the old ones on the page as soon as it has scored them. A
debate whose texts change (a room imported again with another transcript) loses its scores
through `debate_scores_forget`, and the next fill scores it again.

Which reward model: among reward models that read at least one debate-judgment queue, the
active version with the highest id — the version that passed the gate most recently (after a
roll back, the version rolled back to counts by its own id). None: the block says so.

In sample or not: a reward model trained on a debate's judgment (a pair with the same question
and the same two answers — the texts a debate-judgment item pairs) has fit that debate, so its
reading there is not a result. Each score records whether the version's labels held the debate
on the training side, the held-out side, or not at all (`DebateScore.in_labels`), and the
block reports the judge's accuracy only over debates outside its training labels, with n and a
Wilson interval. Correct means P(correct side) > 0.5, as for human judges.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from annotations.kinds import QueueKind
from annotations.models import Label
from core.stats import Share
from rewards.data import legacy_is_heldout, pairs_from_labels
from rewards.models import DebateScore, InLabels, RewardVersion, SplitGroup, Status
from rewards.scoring import preference, version_rewards
from rewards.services import NoActiveVersion

# Debates a fill scores at most (two texts each): a task stays short, the next one goes on.
FILL_LIMIT = 128
FILL_CHUNK = 32
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DebateTexts:
    """What each side of one debate said. Consultancy: the silent side has no speeches."""

    debate_id: int
    question: str
    answer_a: str
    answer_b: str
    speeches_a: tuple[str, ...]
    speeches_b: tuple[str, ...]
    correct_side: str = ""  # "a", "b", or "" when none is known

    def pairs(self) -> list[tuple[str, str]]:
        """The two (prompt, response) pairs scored: side A's, then side B's."""
        return [
            (self.question, "\n\n".join((self.answer_a, *self.speeches_a))),
            (self.question, "\n\n".join((self.answer_b, *self.speeches_b))),
        ]


@dataclass(frozen=True)
class DebateTextsProvider:
    # The debates that are over (judged or finished, with a transcript), as a queryset of
    # the debate model: rewards narrows it by primary key and never reads its fields.
    over: Callable[[], QuerySet[Any]]
    # The texts of these debates (any order; ids it does not know are left out).
    texts: Callable[[Sequence[int]], list[DebateTexts]]


_providers: list[DebateTextsProvider] = []


def debate_texts_register(provider: DebateTextsProvider) -> None:
    """Call from an AppConfig.ready(); one provider (the debate app's)."""
    _providers[:] = [provider]


def _provider() -> DebateTextsProvider | None:
    return _providers[0] if _providers else None


def auto_judge_version() -> RewardVersion | None:
    """The version the automatic judge uses (the rule in this module's docstring)."""
    return (
        RewardVersion.objects.filter(
            status=Status.ACTIVE, reward_model__queues__kind=QueueKind.DEBATE_JUDGMENT
        )
        .select_related("reward_model")
        .order_by("-pk")
        .first()
    )


def _pair_key(prompt: str, one: str, other: str) -> str:
    """A judgment's texts, either way round: what a debate and a pair are matched on."""
    first, second = sorted((one, other))
    return hashlib.sha256("\x1f".join((prompt, first, second)).encode()).hexdigest()


@dataclass(frozen=True)
class VersionLabels:
    """The judgments a version read, by side of the split (pair keys)."""

    train: frozenset[str]
    heldout: frozenset[str]

    def of(self, debate: DebateTexts) -> str:
        key = _pair_key(debate.question, debate.answer_a, debate.answer_b)
        if key in self.train:
            return InLabels.TRAIN
        return InLabels.HELDOUT if key in self.heldout else InLabels.NONE


def version_labels(version: RewardVersion) -> VersionLabels:
    """The pairs of the labels the version read (its `label_ids`), split as its run split
    them: the stored sides (groups no run stored yet: the rule before sides were stored)."""
    ids = RewardVersion.objects.filter(pk=version.pk).values_list("label_ids", flat=True).get()
    labels = (
        Label.objects.filter(pk__in=ids or [])
        .select_related("item", "queue")
        .only("id", "value", "queue__kind", "item__payload", "item_id", "queue_id")
    )
    pairs = pairs_from_labels(labels)
    sides = dict(
        SplitGroup.objects.filter(
            reward_model_id=version.reward_model_id, group__in={p.group for p in pairs}
        ).values_list("group", "heldout")
    )
    percent = version.reward_model.heldout_percent
    train: set[str] = set()
    heldout: set[str] = set()
    for pair in pairs:
        side = sides.get(pair.group)
        held = legacy_is_heldout(pair.group, percent) if side is None else side
        (heldout if held else train).add(_pair_key(pair.prompt, pair.chosen, pair.rejected))
    return VersionLabels(frozenset(train), frozenset(heldout))


def debate_scores_fill(*, limit: int = FILL_LIMIT) -> int:
    """Worker side (loads the checkpoint): score up to `limit` debates that have no score
    from the chosen version, newest first, in batches; returns how many were scored. Rows are
    inserted with ignore_conflicts, so two fills racing on one debate store one score."""
    provider = _provider()
    if provider is None:
        return 0
    done = 0
    known: dict[int, VersionLabels] = {}

    def labels_of(version: RewardVersion) -> VersionLabels:
        # Read once per fill and version, and only when something needs it (it reads every
        # label the version read).
        if version.pk not in known:
            known[version.pk] = version_labels(version)
        return known[version.pk]

    while done < limit:
        # Read again per chunk: a promotion meanwhile moves the rest to the new version.
        version = auto_judge_version()
        if version is None:
            break
        if DebateScore.objects.filter(version=version, in_labels="").exists():
            _in_labels_fill(provider, version, labels_of(version))
        scored = DebateScore.objects.filter(version=version).values("debate_id")
        ids = list(
            provider.over()
            .exclude(pk__in=scored)
            .order_by("-pk")
            .values_list("pk", flat=True)[: min(FILL_CHUNK, limit - done)]
        )
        if not ids:
            break
        texts = provider.texts(ids)
        if not texts:
            break
        in_labels = labels_of(version)
        pairs = [pair for debate in texts for pair in debate.pairs()]
        try:
            rewards = version_rewards(version=version, pairs=pairs)
        except NoActiveVersion:
            log.warning("auto judge: version %s has no checkpoint; nothing scored", version.pk)
            break
        rows = []
        for n, debate in enumerate(texts):
            reward_a, reward_b = rewards[2 * n], rewards[2 * n + 1]
            rows.append(
                DebateScore(
                    version=version,
                    debate_id=debate.debate_id,
                    reward_a=reward_a,
                    reward_b=reward_b,
                    probability_a=preference(reward_a, reward_b),
                    in_labels=in_labels.of(debate),
                    correct_side=debate.correct_side,
                )  # fmt: skip
            )
        DebateScore.objects.bulk_create(rows, ignore_conflicts=True)
        done += len(rows)
    return done


def _in_labels_fill(
    provider: DebateTextsProvider, version: RewardVersion, labels: VersionLabels
) -> None:
    """Scores stored before `in_labels` was kept: look it (and the correct side) up."""
    missing = list(
        DebateScore.objects.filter(version=version, in_labels="").values_list("debate_id", "pk")
    )
    rows = dict(missing)
    for start in range(0, len(missing), 500):
        for debate in provider.texts([d for d, _ in missing[start : start + 500]]):
            DebateScore.objects.filter(pk=rows[debate.debate_id]).update(
                in_labels=labels.of(debate), correct_side=debate.correct_side
            )


def debate_scores_forget(*, debate_id: int) -> int:
    """The debate's texts changed (a room imported again with another transcript): drop every
    version's score of it, so the next fill scores what it says now. Returns rows deleted."""
    deleted, _ = DebateScore.objects.filter(debate_id=debate_id).delete()
    return deleted


def auto_judge_accuracy(version: RewardVersion) -> tuple[Share, int]:
    """The automatic judge's accuracy over the debates it scored that are outside its
    training labels and have a known correct side (right: P(correct side) > 0.5), and how
    many scored debates were left out for being in its training labels."""
    known = DebateScore.objects.filter(version=version, correct_side__in=("a", "b"))
    outside = known.exclude(in_labels__in=(InLabels.TRAIN, ""))
    right = outside.filter(
        Q(correct_side="a", probability_a__gt=0.5) | Q(correct_side="b", probability_a__lt=0.5)
    )
    left_out = known.filter(in_labels=InLabels.TRAIN).count()
    return Share(right.count(), outside.count()), left_out


@dataclass(frozen=True)
class AutoJudge:
    """What the researcher's block shows: the chosen version (None: no reward model fits),
    its score of the debate (None: not scored yet), and its accuracy outside its training
    labels (with how many in-sample debates that leaves out)."""

    version: RewardVersion | None
    score: DebateScore | None
    accuracy: Share | None = None
    in_sample_left_out: int = 0

    @property
    def percent_a(self) -> int | None:
        return round(100 * self.score.probability_a) if self.score else None

    @property
    def percent_b(self) -> int | None:
        return None if self.percent_a is None else 100 - self.percent_a

    @property
    def picks(self) -> str:
        """The side it leans to: "a", "b", or "" (no score, or exactly 50 %)."""
        if self.score is None or self.score.probability_a == 0.5:
            return ""
        return "a" if self.score.probability_a > 0.5 else "b"


def debate_auto_judge(*, debate_id: int) -> AutoJudge | None:
    """The automatic judge's reading of a debate; None while the debate is not over (or no
    app provides debates). Researchers only: the caller checks the role."""
    provider = _provider()
    if provider is None or not provider.over().filter(pk=debate_id).exists():
        return None
    version = auto_judge_version()
    if version is None:
        return AutoJudge(None, None)
    score = DebateScore.objects.filter(version=version, debate_id=debate_id).first()
    accuracy, left_out = auto_judge_accuracy(version)
    return AutoJudge(version, score, accuracy, left_out)
