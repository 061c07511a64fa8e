"""Cross-play tournaments (Khan et al. 2024, "Debating with More Persuasive LLMs Leads to More
Truthful Answers", Figure 1): every ordered pair of entrants debates every chosen question,
the pair's first entrant arguing the correct answer, and the judges' verdicts give

An entrant is a debater config with its best-of-n (debate.records.BatchSpec.tournament_entrants):
one config may enter plain and as best of 4, each candidate set chosen by the active debate
reward model as in live debates (debate.generation).

- each entrant's aggregate rating: a Bradley–Terry fit (Elo scale, mean 1000) over soft wins,
  where a debate is worth the judge's probability on a debater's side to that debater (and the
  rest to its opponent); self-play debates are not games. 95 % intervals: percentiles of the
  fits to 200 resamples of the questions with replacement (a question's debates move
  together: they share a passage and an LLM judge's habits on it);
- judge accuracy on self-play debates (both sides one entrant), per entrant, with its Wilson
  interval;
- the trend: an ordinary least-squares line of judge accuracy on rating, over the entrants.

It reads the same Verdict rows as the analytics page (live judges: human and LLM; offline
judges are not counted), through the batch's debates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from core.stats import Share
from debate.models import DebateBatch, Side, Verdict, VerdictKind, judge_was_correct
from debate.records import BatchSpec, Entrant, entrant_name
from debate.research.analytics import BOOTSTRAP_SAMPLES, _bt_fit
from llm.models import ModelConfig

RATING_METHOD = (
    "Bradley–Terry (Elo scale, mean 1000) over soft wins — a debate gives each debater the "
    f"judge's probability on its side; 95 % interval from {BOOTSTRAP_SAMPLES} bootstrap "
    "resamples of the questions"
)
ACCURACY_METHOD = "judge accuracy on self-play debates (P(correct) > 50 %), Wilson 95 % interval"
TREND_METHOD = "ordinary least squares of self-play judge accuracy on rating, one point an entrant"


@dataclass(frozen=True)
class Game:
    """One verdict on one cross-play debate: `p_first` is the judge's probability on the side
    `first` argued."""

    question: int
    first: Hashable  # an entrant
    second: Hashable
    p_first: float


@dataclass(frozen=True)
class TournamentEntry:
    config_id: int
    best_of_n: int
    name: str
    rating: float | None
    low: float | None
    high: float | None
    games: int
    self_play: Share  # the judge right on this entrant's self-play debates


@dataclass(frozen=True)
class Trend:
    slope: float  # accuracy per rating point
    intercept: float


@dataclass(frozen=True)
class Tournament:
    entries: list[TournamentEntry]
    trend: Trend | None
    questions: int
    debates: int
    verdicts: int
    rating_method: str = RATING_METHOD
    accuracy_method: str = ACCURACY_METHOD
    trend_method: str = TREND_METHOD


def soft_bradley_terry(
    games: list[Game], players: Sequence[Hashable], *, samples: int = BOOTSTRAP_SAMPLES,
    prior: float = 0.5, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(ratings, low, high) per player (in `players` order) from soft wins, fitted by the
    analytics' Bradley–Terry (`_bt_fit`: Hunter's MM, the same small symmetric prior), with
    95 % intervals from resampling questions. Each question's games form one win table; a
    resample sums the tables of the questions drawn."""
    index = {player: i for i, player in enumerate(players)}
    questions = sorted({game.question for game in games})
    at = {question: q for q, question in enumerate(questions)}
    size = len(players)
    tables = np.zeros((len(questions), size, size))
    for game in games:
        q, i, j = at[game.question], index[game.first], index[game.second]
        tables[q, i, j] += game.p_first
        tables[q, j, i] += 1 - game.p_first
    point = _bt_fit(tables.sum(axis=0)[None], prior=prior)[0]
    if samples <= 0 or len(questions) < 2:
        return point, np.full(size, np.nan), np.full(size, np.nan)
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(questions), size=(samples, len(questions)))
    # Counts of each question per resample, then one matrix product: (samples, n, n).
    counts = np.stack([np.bincount(row, minlength=len(questions)) for row in drawn])
    resampled = np.tensordot(counts.astype(float), tables, axes=(1, 0))
    boot = _bt_fit(resampled, prior=prior)
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return point, low, high


def tournament_compute(batch: DebateBatch) -> Tournament | None:
    """The tournament's ratings, self-play accuracies and trend; None for a batch that is not
    a tournament."""
    spec = BatchSpec.model_validate(batch.spec)
    if not spec.tournament_config_ids:
        return None
    players: list[Entrant] = spec.tournament_entrants()
    names = dict(ModelConfig.objects.filter(pk__in=[i for i, _ in players])
                 .values_list("pk", "name"))  # fmt: skip
    verdicts = (
        Verdict.objects.filter(debate__batch=batch)
        .exclude(kind=VerdictKind.OFFLINE)
        .exclude(debate__correct_side="")
        .values_list(
            "debate_id", "probability_a", "debate__correct_side", "debate__bank_question_id",
            "debate__debater_a_config_id", "debate__debater_b_config_id", "debate__best_of_n",
            "debate__best_of_n_b",
        )
    )  # fmt: skip
    games: list[Game] = []
    self_play: dict[Entrant, list[bool]] = defaultdict(list)
    debates, questions = set(), set()
    count = 0
    for debate_id, p_a, correct, question, config_a, config_b, n_a, n_b in verdicts:
        count += 1
        debates.add(debate_id)
        questions.add(question)
        p_correct = (p_a if correct == Side.A else 100 - p_a) / 100
        a, b = (config_a, n_a), (config_b, n_b or n_a)
        if a == b:
            self_play[a].append(judge_was_correct(p_correct))
            continue
        # The pair's first entrant argued the correct answer (the side that is correct).
        first, second = (a, b) if correct == Side.A else (b, a)
        games.append(Game(question=question, first=first, second=second, p_first=p_correct))
    played: dict[Hashable, int] = defaultdict(int)
    for game in games:
        played[game.first] += 1
        played[game.second] += 1
    ratings: dict[Entrant, tuple[float, float | None, float | None]] = {}
    if games:
        point, low, high = soft_bradley_terry(games, players)
        for i, player in enumerate(players):
            ratings[player] = (
                float(point[i]),
                None if np.isnan(low[i]) else float(low[i]),
                None if np.isnan(high[i]) else float(high[i]),
            )
    entries = [
        TournamentEntry(
            config_id=config_id, best_of_n=n,
            name=entrant_name(names.get(config_id, f"config {config_id}"), n),
            rating=ratings[player][0] if player in ratings else None,
            low=ratings[player][1] if player in ratings else None,
            high=ratings[player][2] if player in ratings else None,
            games=played[player],
            self_play=Share(sum(self_play[player]), len(self_play[player])),
        )
        for player in players
        for config_id, n in [player]
    ]  # fmt: skip
    return Tournament(
        entries=entries, trend=accuracy_trend(entries), questions=len(questions),
        debates=len(debates), verdicts=count,
    )  # fmt: skip


def accuracy_trend(entries: list[TournamentEntry]) -> Trend | None:
    """The least-squares line through (rating, self-play accuracy), or None with fewer than
    two entrants that have both, or when every rating is the same."""
    points = [(e.rating, e.self_play.value) for e in entries
              if e.rating is not None and e.self_play.value is not None]  # fmt: skip
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return None
    slope, intercept = np.polyfit([x for x, _ in points], [y for _, y in points], 1)
    return Trend(slope=float(slope), intercept=float(intercept))
