"""What debates add up to: judge accuracy, scores, calibration, agreement, debater ratings.

One code path for every debate, imported or native: it reads Verdict rows (one per judge's
final answer on a debate) with the few debate columns it needs, in one query, and computes
in Python. A judge is correct when their final probability on the correct answer is above
0.5 (Michael et al. 2023).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from django.db import connection

from core.stats import Share
from debate.models import (
    Market,
    MarketStep,
    Protocol,
    Verdict,
    VerdictKind,
    judge_score,
    judge_was_correct,
)
from llm.models import ModelConfig

# Calibration: the judge's confidence in the answer they chose, in five equal bins.
CALIBRATION_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CALIBRATION_BINNING = (
    "5 equal-width bins of the confidence in the chosen answer (50–60 %, …, 90–99 %)"
)
TURN_BUCKETS = ("0", "1", "2", "3", "4", "5–9", "10+")
BOOTSTRAP_SAMPLES = 200
MARKET_METHOD = (
    "Cross-entropy: −[y·ln p + (1 − y)·ln(1 − p)] of M's P(A) at a step against the judge's "
    "final P(A) (y), one value per market and judge verdict; |Δp| per step and steps to the "
    f"stop: means over markets. 95 % intervals: percentile bootstrap ({BOOTSTRAP_SAMPLES} "
    "resamples of the markets); accuracies: Wilson. p₀ is right when it puts more than 50 % "
    "on the correct answer; Brier = mean (1 − p(correct))²."
)
GROUPINGS = {
    "setting": "setting (debaters × protocol)",
    "judge": "judge (human, or LLM model)",
    "protocol": "protocol and turn order",
    "model": "debater models",
    "source": "source",
}


@dataclass(frozen=True)
class Filters:
    group_by: str = "setting"
    date_from: date | None = None
    date_to: date | None = None
    protocol: str = ""
    judge_kind: str = ""
    source: str = ""
    batch_id: int | None = None
    paper_only: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    debate_id: int
    kind: str
    judge: str
    p_correct: float
    turns: int
    protocol: str
    human_debaters: bool
    honest: bool | None  # consultancy: did the consultant argue the correct answer?
    group: str
    winner: str | None  # the debater the judge favoured (debates with two named sides)
    loser: str | None
    chose_a: bool | None
    question: int | None = None  # the bank question (batch debates)
    p_a: float = 0.5


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    n: int
    confidence: float | None
    accuracy: float | None


@dataclass(frozen=True)
class GroupStats:
    name: str
    accuracy: Share
    mean_turns: float
    mean_score: float
    brier: float
    ece: float
    calibration: list[CalibrationBin]
    by_turns: list[tuple[str, Share]]
    honest: Share | None = None
    dishonest: Share | None = None


@dataclass(frozen=True)
class Agreement:
    """LLM judges against human judges on the same debates."""

    same_answer: Share
    mean_abs_difference: float | None


@dataclass(frozen=True)
class Rating:
    name: str
    score: float
    low: float
    high: float
    games: int


@dataclass(frozen=True)
class MeanWithInterval:
    """A mean over independent units with a percentile-bootstrap 95 % interval."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class MarketStepStats:
    step: int  # 0: M's p_0, before any argument; t: after the t-th kept argument
    cross_entropy: MeanWithInterval | None  # M's p_t against the judge's final P(A)
    move: MeanWithInterval | None  # |p_t − p_(t−1)|; None at step 0


@dataclass(frozen=True)
class ProtocolRow:
    """One line of the same-questions table: who answered, how often right."""

    name: str
    accuracy: Share
    brier: float


@dataclass(frozen=True)
class MarketStats:
    markets: int
    questions: int
    initial_accuracy: Share  # M's p_0 (the deployed answer) against the truth
    initial_brier: float
    by_step: list[MarketStepStats]
    steps_to_stop: MeanWithInterval
    converged: Share
    methods: list[tuple[str, int]]  # how M's probabilities were read, and on how many markets
    same_questions: list[ProtocolRow]
    method: str = MARKET_METHOD


@dataclass(frozen=True)
class Analytics:
    groups: list[GroupStats]
    agreement: Agreement
    ratings: list[Rating]
    verdicts: int
    market: MarketStats | None = None
    binning: str = CALIBRATION_BINNING

    @property
    def consultancy(self) -> list[GroupStats]:
        return [group for group in self.groups if group.honest is not None]


def _group(filters: Filters, *, kind: str, judge: str, protocol: str, human: bool,
           turn_order: str, a_model: str, b_model: str, source: str) -> str:  # fmt: skip
    match filters.group_by:
        case "judge":
            return "Human judge" if kind != VerdictKind.LLM else f"LLM judge: {judge}"
        case "protocol":
            return f"{protocol}, {turn_order}"
        case "model":
            models = [a_model] if protocol == Protocol.CONSULTANCY else [a_model, b_model]
            return " vs ".join(m or "human" for m in models)
        case "source":
            return source
    return f"{'Human' if human else 'AI'} {protocol}"


def verdict_rows(filters: Filters) -> list[Row]:
    verdicts = Verdict.objects.exclude(debate__correct_side="")
    if filters.date_from:
        verdicts = verdicts.filter(debate__created_at__date__gte=filters.date_from)
    if filters.date_to:
        verdicts = verdicts.filter(debate__created_at__date__lte=filters.date_to)
    if filters.protocol:
        verdicts = verdicts.filter(debate__protocol=filters.protocol)
    if filters.judge_kind:
        verdicts = verdicts.filter(kind=filters.judge_kind)
    else:
        # Offline judges read finished transcripts; they are counted only when asked for.
        verdicts = verdicts.exclude(kind=VerdictKind.OFFLINE)
    if filters.source:
        verdicts = verdicts.filter(debate__source=filters.source)
    if filters.batch_id:
        verdicts = verdicts.filter(debate__batch_id=filters.batch_id)
    if filters.paper_only:
        verdicts = verdicts.filter(debate__included_in_paper=True)
    columns = verdicts.values_list(
        "debate_id", "kind", "judge_name", "probability_a", "judge_turns",
        "debate__correct_side", "debate__protocol", "debate__human_debaters",
        "debate__consultant_side", "debate__turn_order", "debate__source",
        "debate__debater_a_name", "debate__debater_b_name",
        "debate__debater_a_config_id", "debate__debater_b_config_id",
        "debate__bank_question_id",
    )  # fmt: skip
    # Config names from one small query, not two joins over every verdict.
    config_names = dict(ModelConfig.objects.values_list("pk", "name"))
    # Plain tuples straight from the cursor: Django's per-row converters cost more than the
    # query at 10,000 rows. (SQLite returns booleans as 0/1; they are only tested for truth.)
    sql, params = columns.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    groups: dict[tuple[object, ...], str] = {}
    rows = []
    for (debate_id, kind, judge, p_a, turns, correct, protocol, human, consultant, turn_order,
         source, a_name, b_name, a_config, b_config, question) in fetched:  # fmt: skip
        human = bool(human)
        a_model, b_model = config_names.get(a_config), config_names.get(b_config)
        key = (kind, judge, protocol, human, turn_order, a_model, b_model, source)
        if key not in groups:
            groups[key] = _group(
                filters, kind=kind, judge=judge, protocol=protocol, human=human,
                turn_order=turn_order, a_model=a_model or "", b_model=b_model or "",
                source=source,
            )  # fmt: skip
        p_correct = (p_a if correct == "a" else 100 - p_a) / 100
        a = a_model or a_name
        b = b_model or b_name
        two_sided = protocol == Protocol.DEBATE and a and b and a != b and p_a != 50
        rows.append(Row(
            debate_id=debate_id, kind=kind, judge=judge, p_correct=p_correct, turns=turns,
            protocol=protocol, human_debaters=human,
            honest=(consultant == correct) if protocol == Protocol.CONSULTANCY else None,
            group=groups[key],
            winner=(a if p_a > 50 else b) if two_sided else None,
            loser=(b if p_a > 50 else a) if two_sided else None,
            chose_a=None if p_a == 50 else p_a > 50, question=question, p_a=p_a / 100,
        ))  # fmt: skip
    return rows


def _turn_bucket(turns: int) -> str:
    if turns <= 4:
        return str(turns)
    return "5–9" if turns < 10 else "10+"


def group_stats(name: str, rows: Sequence[Row]) -> GroupStats:
    n = len(rows)
    correct = [judge_was_correct(row.p_correct) for row in rows]
    score = [judge_score(row.p_correct, row.turns) for row in rows]
    bins: list[CalibrationBin] = []
    ece = 0.0
    confidence = [max(row.p_correct, 1 - row.p_correct) for row in rows]
    in_bin: list[list[int]] = [[] for _ in CALIBRATION_EDGES[1:]]
    for i, c in enumerate(confidence):
        # Percentages are whole numbers: round before flooring, so 0.6 is not 0.5999….
        in_bin[min(len(in_bin) - 1, int(round(c * 100) // 10) - 5)].append(i)
    for members, low, high in zip(in_bin, CALIBRATION_EDGES, CALIBRATION_EDGES[1:], strict=False):
        if not members:
            bins.append(CalibrationBin(low, high, 0, None, None))
            continue
        conf = sum(confidence[i] for i in members) / len(members)
        acc = sum(correct[i] for i in members) / len(members)
        ece += len(members) / n * abs(acc - conf)
        bins.append(CalibrationBin(low, high, len(members), conf, acc))
    by_turns: dict[str, list[bool]] = defaultdict(list)
    for row, ok in zip(rows, correct, strict=True):
        by_turns[_turn_bucket(row.turns)].append(ok)
    honest = [ok for row, ok in zip(rows, correct, strict=True) if row.honest is True]
    dishonest = [ok for row, ok in zip(rows, correct, strict=True) if row.honest is False]
    consultancy = any(row.honest is not None for row in rows)
    return GroupStats(
        name=name,
        accuracy=Share(sum(correct), n),
        mean_turns=sum(row.turns for row in rows) / n,
        mean_score=sum(score) / n,
        brier=sum((1 - row.p_correct) ** 2 for row in rows) / n,
        ece=ece,
        calibration=bins,
        by_turns=[
            (b, Share(sum(by_turns[b]), len(by_turns[b]))) for b in TURN_BUCKETS if by_turns[b]
        ],  # fmt: skip
        honest=Share(sum(honest), len(honest)) if consultancy else None,
        dishonest=Share(sum(dishonest), len(dishonest)) if consultancy else None,
    )


def agreement(rows: Iterable[Row]) -> Agreement:
    llm: dict[int, list[Row]] = defaultdict(list)
    human: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        (llm if row.kind == VerdictKind.LLM else human)[row.debate_id].append(row)
    same = total = 0
    differences: list[float] = []
    for debate_id in llm.keys() & human.keys():
        for machine in llm[debate_id]:
            for person in human[debate_id]:
                total += 1
                same += machine.chose_a is not None and machine.chose_a == person.chose_a
                differences.append(abs(machine.p_correct - person.p_correct))
    mean = sum(differences) / len(differences) if differences else None
    return Agreement(same_answer=Share(same, total), mean_abs_difference=mean)


def bradley_terry(matches: Sequence[tuple[str, str]], *, samples: int = BOOTSTRAP_SAMPLES,
                  max_players: int = 30) -> list[Rating]:  # fmt: skip
    """Ratings on the Elo scale (mean 1000) from (winner, loser) pairs, fitted by Hunter's MM
    algorithm with a small symmetric prior, and 95 % intervals from resampling matches."""
    games: dict[str, int] = defaultdict(int)
    for winner, loser in matches:
        games[winner] += 1
        games[loser] += 1
    players = sorted(games, key=lambda p: (-games[p], p))[:max_players]
    if len(players) < 2:
        return []
    index = {player: i for i, player in enumerate(players)}
    pairs = np.array(
        [(index[w], index[x]) for w, x in matches if w in index and x in index], dtype=np.int64
    )
    if not len(pairs):
        return []
    size = len(players)
    wins = np.zeros((size, size))
    np.add.at(wins, (pairs[:, 0], pairs[:, 1]), 1.0)
    point = _bt_fit(wins[None])[0]
    # Resampling the matches with replacement = multinomial counts over the win matrix;
    # all resamples are fitted at once.
    rng = np.random.default_rng(0)
    resampled = rng.multinomial(len(pairs), wins.ravel() / len(pairs), size=samples)
    boot = _bt_fit(resampled.reshape(samples, size, size).astype(float))
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    ratings = [Rating(name=player, score=float(point[i]), low=float(low[i]),
                      high=float(high[i]), games=games[player])
               for player, i in index.items()]  # fmt: skip
    return sorted(ratings, key=lambda rating: -rating.score)


def _bt_fit(wins: np.ndarray, *, prior: float = 0.5, iterations: int = 100) -> np.ndarray:
    """Fit (samples, n, n) win counts (row beat column) at once: (samples, n) ratings. The
    prior spreads `prior` games won and lost over each player's pairings, so a player who
    never won still gets a finite rating."""
    size = wins.shape[-1]
    pseudo = np.full((size, size), prior / max(1, size - 1))
    np.fill_diagonal(pseudo, 0.0)
    wins = wins + pseudo
    played = wins + np.swapaxes(wins, 1, 2)
    total_wins = wins.sum(axis=2)
    strength = np.ones(wins.shape[:2])
    for _ in range(iterations):
        denominator = (played / (strength[:, :, None] + strength[:, None, :])).sum(axis=2)
        strength = total_wins / denominator
        strength /= np.exp(np.log(strength).mean(axis=1, keepdims=True))
    return 1000 + 400 * np.log10(strength)


def mean_interval(values: Sequence[float], *, samples: int = BOOTSTRAP_SAMPLES,
                  seed: int = 0) -> MeanWithInterval | None:  # fmt: skip
    """The mean, and the 2.5th and 97.5th percentiles of the means of `samples` resamples
    with replacement (the values must be independent units); None for no values."""
    if not values:
        return None
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(samples, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return MeanWithInterval(float(data.mean()), float(low), float(high), len(data))


def _cross_entropy(p: float, y: float) -> float:
    p = min(1 - 1e-6, max(1e-6, p))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def market_stats(rows: Sequence[Row]) -> MarketStats | None:
    """The market metrics over the markets whose debates have verdicts among `rows` (the
    analytics' own rows, so the same filters apply), and the same-questions table: every
    protocol's judges and M's p₀, on the bank questions that had a market."""
    finals: dict[int, list[float]] = defaultdict(list)
    for row in rows:
        if row.protocol == Protocol.MARKET:
            finals[row.debate_id].append(row.p_a)
    markets = list(
        Market.objects.filter(debate_id__in=finals, initial_probability_a__isnull=False)
        .select_related("debate")
        .order_by("debate_id")
    )
    if not markets:
        return None
    steps: dict[int, list[MarketStep]] = defaultdict(list)
    for step in MarketStep.objects.filter(market__in=markets).order_by("step"):
        steps[step.market_id].append(step)
    cross: dict[int, list[float]] = defaultdict(list)
    moves: dict[int, list[float]] = defaultdict(list)
    initial_right: list[bool] = []
    initial_brier: list[float] = []
    lengths: list[int] = []
    methods: dict[str, int] = defaultdict(int)
    for market in markets:
        assert market.initial_probability_a is not None
        path = [market.initial_probability_a] + [s.probability_after for s in steps[market.pk]]
        for t, p in enumerate(path):
            # One value per market: its judges' mean cross-entropy, so markets weigh alike.
            cross[t].append(sum(_cross_entropy(p, y) for y in finals[market.debate_id])
                            / len(finals[market.debate_id]))  # fmt: skip
            if t:
                moves[t].append(abs(p - path[t - 1]))
        correct = market.debate.correct_side
        p0 = market.initial_probability_a if correct == "a" else 1 - market.initial_probability_a
        initial_right.append(judge_was_correct(p0))
        initial_brier.append((1 - p0) ** 2)
        lengths.append(len(steps[market.pk]))
        methods[market.initial_method or "?"] += 1
    by_step = [
        MarketStepStats(step=t, cross_entropy=mean_interval(cross[t]),
                        move=mean_interval(moves[t]) if t else None)
        for t in sorted(cross)
    ]  # fmt: skip
    stepped = mean_interval([float(n) for n in lengths])
    assert stepped is not None
    questions = {m.debate.bank_question_id for m in markets if m.debate.bank_question_id}
    same_questions = [
        ProtocolRow(
            name="Market: M's first guess p₀ (the deployed answer)",
            accuracy=Share(sum(initial_right), len(initial_right)),
            brier=sum(initial_brier) / len(initial_brier),
        )
    ]
    for protocol, label in Protocol.choices:
        judged = [row for row in rows if row.protocol == protocol and row.question in questions]
        if judged:
            right = [judge_was_correct(row.p_correct) for row in judged]
            same_questions.append(ProtocolRow(
                name=f"{label.split(' (')[0]}: the judge's final answer",
                accuracy=Share(sum(right), len(right)),
                brier=sum((1 - row.p_correct) ** 2 for row in judged) / len(judged),
            ))  # fmt: skip
    converged = sum(m.stop_reason == "converged" for m in markets)
    return MarketStats(
        markets=len(markets), questions=len(questions),
        initial_accuracy=same_questions[0].accuracy, initial_brier=same_questions[0].brier,
        by_step=by_step, steps_to_stop=stepped, converged=Share(converged, len(markets)),
        methods=sorted(methods.items()), same_questions=same_questions,
    )  # fmt: skip


def analytics_compute(filters: Filters) -> Analytics:
    rows = verdict_rows(filters)
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row.group].append(row)
    matches = [(row.winner, row.loser) for row in rows if row.winner and row.loser]
    return Analytics(
        groups=[group_stats(name, members) for name, members in sorted(groups.items())],
        agreement=agreement(rows),
        ratings=bradley_terry(matches),  # type: ignore[arg-type]
        verdicts=len(rows),
        market=market_stats(rows),
    )
