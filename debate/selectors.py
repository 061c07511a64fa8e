"""What each viewer of a debate may see. The judge's view is built without the hidden passage
and the correct answer until the judgment is final — not hidden by a template, never loaded
into it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet

from core.roles import Role, user_has_role
from debate.models import (
    Debate,
    DebateStatus,
    JudgeTurn,
    Judgment,
    Protocol,
    Source,
    Speech,
    SpeechCandidate,
    Verdict,
    VerdictKind,
)
from rewards.models import RewardModel

Viewer = Literal["judge", "observer"]


def debate_viewer(user: AbstractBaseUser | AnonymousUser, debate_id: int) -> Viewer | None:
    """'judge' for the assigned judge, 'observer' for other researchers, None otherwise.
    A researcher who is also the judge sees the judge's view."""
    if not isinstance(user, User):
        return None
    rows = list(Debate.objects.filter(pk=debate_id).values_list("judge_id", flat=True))
    if not rows:
        return None
    if rows[0] is not None and rows[0] == user.pk:
        return "judge"
    if user_has_role(user, Role.RESEARCHER):
        return "observer"
    return None


@dataclass(frozen=True)
class Belief:
    probability_a: int

    @property
    def probability_b(self) -> int:
        return 100 - self.probability_a


@dataclass(frozen=True)
class QuoteGroup:
    """One verified quote text of one side, and how many times that side quoted it."""

    side: str
    text: str
    count: int


@dataclass(frozen=True)
class RoundView:
    number: int
    speeches: list[Speech]
    judge_turn: JudgeTurn | None


@dataclass(frozen=True)
class DebateView:
    """Everything a page or a socket renders about a debate for one viewer."""

    debate_id: int
    viewer: Viewer
    question: str
    answer_a: str
    answer_b: str
    protocol: str
    consultant_side: str
    status: str
    status_display: str
    current_round: int
    max_rounds: int
    rounds_fixed: bool
    speech_char_limit: int
    quote_char_limit: int
    prior: JudgeTurn | None
    rounds: list[RoundView]
    verified_quotes: list[tuple[str, str]] = field(default_factory=list)  # (side, text)
    quote_groups: list[QuoteGroup] = field(default_factory=list)  # the same, repeats counted
    # Only for observers, or for the judge once judged.
    passage: str | None = None
    correct_side: str | None = None
    judgment: Judgment | None = None
    # Every judge's final answer (imported rooms, LLM judges): observers only.
    verdicts: list[Verdict] = field(default_factory=list)
    debater_names: tuple[str, str] = ("", "")
    source: str = ""
    room_name: str = ""
    has_transcript: bool = True
    # The judge's next debate still waiting for them, once this one is judged.
    next_debate_id: int | None = None
    best_of_n: int = 1
    # Best-of-n candidates by speech id: observers only (the judge sees the chosen text).
    candidates: dict[int, list[SpeechCandidate]] = field(default_factory=dict)

    @property
    def is_consultancy(self) -> bool:
        return self.protocol == Protocol.CONSULTANCY

    @property
    def is_market(self) -> bool:
        return self.protocol == Protocol.MARKET

    @property
    def last_round(self) -> bool:
        return self.current_round >= self.max_rounds

    @property
    def judged(self) -> bool:
        return self.status == DebateStatus.JUDGED

    @property
    def judge_turns(self) -> list[JudgeTurn]:
        """The judge's beliefs in order: the prior, then after each round."""
        turns = [self.prior] if self.prior else []
        return turns + [r.judge_turn for r in self.rounds if r.judge_turn]

    @property
    def belief_now(self) -> Belief:
        """The judge's latest probabilities: where their next turn starts (NYU's app carries
        them over too); 50/50 before the prior."""
        turns = self.judge_turns
        return Belief(turns[-1].probability_a if turns else 50)


def debate_view(debate_id: int, viewer: Viewer) -> DebateView:
    debate = Debate.objects.select_related("judgment").get(pk=debate_id)
    speeches = list(debate.speeches.order_by("round", "side"))
    turns = {turn.round: turn for turn in debate.judge_turns.all()}
    rounds = [
        RoundView(
            number=number,
            speeches=[speech for speech in speeches if speech.round == number],
            judge_turn=turns.get(number),
        )
        for number in range(1, debate.current_round + 1)
    ]
    quotes = [
        (speech.side, quote["text"])
        for speech in speeches
        for quote in speech.quotes
        if quote.get("verified")
    ]
    counts: dict[tuple[str, str], int] = {}
    for quote in quotes:  # in order of first appearance
        counts[quote] = counts.get(quote, 0) + 1
    judged = debate.status == DebateStatus.JUDGED
    reveal = viewer == "observer" or judged
    candidates: dict[int, list[SpeechCandidate]] = {}
    if viewer == "observer" and debate.best_of_n_max > 1:
        for candidate in SpeechCandidate.objects.filter(speech__debate=debate):
            candidates.setdefault(candidate.speech_id, []).append(candidate)
    return DebateView(
        debate_id=debate.pk,
        viewer=viewer,
        question=debate.question,
        answer_a=debate.answer_a,
        answer_b=debate.answer_b,
        protocol=debate.protocol,
        consultant_side=debate.consultant_side,
        status=debate.status,
        status_display=debate.get_status_display(),
        current_round=debate.current_round,
        max_rounds=debate.max_rounds,
        rounds_fixed=debate.rounds_mode == "fixed",
        speech_char_limit=debate.speech_char_limit,
        quote_char_limit=debate.quote_char_limit,
        prior=turns.get(0),
        rounds=rounds,
        verified_quotes=quotes,
        quote_groups=[QuoteGroup(side, text, n) for (side, text), n in counts.items()],
        passage=debate.passage if reveal else None,
        correct_side=(debate.correct_side or None) if reveal else None,
        judgment=getattr(debate, "judgment", None) if judged else None,
        verdicts=list(debate.verdicts.select_related("judge_config")) if reveal else [],
        debater_names=(debate.debater_a_name, debate.debater_b_name),
        source=debate.get_source_display(),
        room_name=debate.room_name or "",
        has_transcript=debate.has_transcript,
        next_debate_id=next_debate_for_judge(debate) if judged and viewer == "judge" else None,
        best_of_n=debate.best_of_n_max if viewer == "observer" else 1,
        candidates=candidates,
    )


WAITING_FOR_JUDGE = [
    DebateStatus.WAITING_FOR_PRIOR, DebateStatus.GENERATING, DebateStatus.AWAITING_JUDGE
]  # fmt: skip


def next_debate_for_judge(debate: Debate) -> int | None:
    """The oldest other debate still waiting for this debate's judge."""
    return (
        Debate.objects.filter(judge_id=debate.judge_id, status__in=WAITING_FOR_JUDGE)
        .exclude(pk=debate.pk)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)
        .first()
    )


def best_of_n_reward_model() -> RewardModel | None:
    """The reward model that picks best-of-n speeches: the one whose active version the
    automatic judge uses (rewards.auto_judge.auto_judge_version: one rule for both)."""
    from rewards.auto_judge import auto_judge_version

    version = auto_judge_version()
    return version.reward_model if version is not None else None


def debates_for_judge(user: User) -> QuerySet[Debate]:
    return Debate.objects.filter(judge=user).order_by("status", "-created_at")


# Where a debate came from: judged live in Arbiter, spoken in a batch of AI debates, or imported
# (a room file or metadata line, from NYU or an Arbiter export): the list's source filter.
DEBATE_ORIGINS = [
    ("live", "live (judged in Arbiter)"),
    ("batch", "batch of AI debates"),
    ("imported", "imported (any source)"),
    *[(f"imported:{value}", f"imported: {label}") for value, label in Source.choices],
]


def _origin_filter(origin: str) -> Q:
    if origin == "live":
        return Q(room_name__isnull=True, batch__isnull=True)
    if origin == "batch":
        return Q(room_name__isnull=True, batch__isnull=False)
    if origin == "imported":
        return Q(room_name__isnull=False)
    return Q(room_name__isnull=False, source=origin.removeprefix("imported:"))


def debates_filtered(*, status: str = "", protocol: str = "", judge_id: int | None = None,
                     query: str = "", origin: str = "") -> QuerySet[Debate]:  # fmt: skip
    """Debates, newest first; `origin` one of DEBATE_ORIGINS' values."""
    debates = Debate.objects.select_related("judge", "judgment").order_by("-created_at", "-pk")
    if origin:
        debates = debates.filter(_origin_filter(origin))
    if status:
        debates = debates.filter(status=status)
    if protocol:
        debates = debates.filter(protocol=protocol)
    if judge_id:
        debates = debates.filter(judge_id=judge_id)
    if query:
        debates = debates.filter(question__icontains=query)
    return debates


# The verdict a row of the debate list shows: the live or imported room's own judge first.
_HEADLINE_KINDS: list[str] = [VerdictKind.HUMAN, VerdictKind.OFFLINE, VerdictKind.LLM]
DEBATES_PER_PAGE = 50


@dataclass(frozen=True)
class DebateRow:
    debate: Debate
    verdict: Verdict | None  # the headline verdict: its correct/wrong and score are shown


def debates_page(debates: QuerySet[Debate], page: int | None) -> Page[DebateRow]:
    """One page of `debates` (DEBATES_PER_PAGE rows; an out-of-range page gives the last),
    each with its headline verdict, so imported rooms, which have verdicts but no live
    judgment, show a score too."""
    paged = Paginator(debates.prefetch_related("verdicts"), DEBATES_PER_PAGE).get_page(page)
    rows = []
    for debate in paged.object_list:
        verdicts = sorted(debate.verdicts.all(), key=lambda v: _HEADLINE_KINDS.index(v.kind))
        rows.append(DebateRow(debate, verdicts[0] if verdicts else None))
    return Page(rows, paged.number, paged.paginator)  # type: ignore[arg-type]
