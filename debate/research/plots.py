"""Geometry for the analytics page's inline SVG plots. Numbers only: the template draws them,
so every label goes through Django's escaping."""

from __future__ import annotations

from dataclasses import dataclass

from django.template.defaultfilters import pluralize

from core.stats import Share
from debate.research.analytics import GroupStats, Rating
from debate.research.tournaments import Tournament

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")


# A bin with fewer verdicts than this is drawn hollow and left off its series' line: one or
# two verdicts put its accuracy at 0 % or 100 %, and a line through them draws spikes.
LINE_MIN_N = 5


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    r: float
    low: float  # the Wilson 95 % interval of its accuracy, as y
    high: float
    solid: bool  # n >= LINE_MIN_N
    label: str


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    points: list[Point]
    path: str


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class CalibrationPlot:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    series: list[Series]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    diagonal: str
    line_min_n: int = LINE_MIN_N


def calibration_plot(
    groups: list[GroupStats], *, width: int = 420, height: int = 300
) -> CalibrationPlot:
    """Each bin a dot at (mean confidence, accuracy), its area growing with n, with a whisker
    for the Wilson 95 % interval of its accuracy; a series' line joins only its bins of at
    least LINE_MIN_N verdicts. The right margin holds the last tick's label."""
    left, top, right, bottom = 48, 12, width - 24, height - 40

    def x_of(confidence: float) -> float:
        return left + (confidence - 0.5) / 0.5 * (right - left)

    def y_of(accuracy: float) -> float:
        return round(bottom - accuracy * (bottom - top), 1)

    series = []
    for index, group in enumerate(groups):
        points = []
        for b in group.calibration:
            if b.confidence is None or b.accuracy is None:
                continue
            share = Share(round(b.accuracy * b.n), b.n)
            low, high = share.interval or (0.0, 1.0)
            points.append(Point(
                x=round(x_of(b.confidence), 1), y=y_of(b.accuracy),
                r=round(2.5 + min(6.0, b.n**0.5 / 2), 1), low=y_of(low), high=y_of(high),
                solid=b.n >= LINE_MIN_N,
                label=f"{group.name}: {b.n} verdict{pluralize(b.n)}, {b.confidence:.0%} confident, "
                f"{b.accuracy:.0%} correct (95 % interval {low:.0%}–{high:.0%})",
            ))  # fmt: skip
        joined = [p for p in points if p.solid]
        path = " ".join(f"{'M' if i == 0 else 'L'}{p.x},{p.y}" for i, p in enumerate(joined))
        series.append(Series(group.name, PALETTE[index % len(PALETTE)], points, path))
    return CalibrationPlot(
        width=width, height=height, left=left, top=top, right=right, bottom=bottom,
        series=series,
        x_ticks=[Tick(round(x_of(v), 1), f"{v:.0%}") for v in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)],
        y_ticks=[Tick(y_of(v), f"{v:.0%}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)],
        diagonal=f"M{x_of(0.5)},{y_of(0.5)} L{x_of(1.0)},{y_of(1.0)}",
    )  # fmt: skip


@dataclass(frozen=True)
class RatingBar:
    name: str
    y: float
    x: float
    low: float
    high: float
    score: float
    interval: str
    games: int


@dataclass(frozen=True)
class RatingPlot:
    width: int
    height: int
    left: int
    right: int
    bars: list[RatingBar]
    ticks: list[Tick]
    axis_y: float


def rating_plot(ratings: list[Rating], *, width: int = 560, row: int = 24) -> RatingPlot:
    """Drawn 1:1 at its width (a narrow screen scrolls it sideways in its box, so its 11 px
    labels never shrink)."""
    left, right = 170, width - 20
    height = row * len(ratings) + 36
    if ratings:
        low = min(r.low for r in ratings) - 20
        high = max(r.high for r in ratings) + 20
    else:
        low, high = 900.0, 1100.0

    def x_of(score: float) -> float:
        return round(left + (score - low) / (high - low) * (right - left), 1)

    bars = [
        RatingBar(
            name=r.name, y=row * i + row / 2 + 4, x=x_of(r.score), low=x_of(r.low),
            high=x_of(r.high), score=r.score, interval=f"{r.low:.0f}–{r.high:.0f}",
            games=r.games,
        )
        for i, r in enumerate(ratings)
    ]  # fmt: skip
    step = max(25, round((high - low) / 4 / 25) * 25)
    start = int(low // step + 1) * step
    ticks = [Tick(x_of(v), f"{v:.0f}") for v in range(start, int(high), step)]
    return RatingPlot(width, height, left, right, bars, ticks, axis_y=row * len(ratings) + 8)


@dataclass(frozen=True)
class TournamentPoint:
    name: str
    colour: str
    x: float
    y: float
    x_low: float
    x_high: float
    y_low: float
    y_high: float
    label: str


@dataclass(frozen=True)
class TournamentPlot:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    points: list[TournamentPoint]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    trend: str  # the fitted line's path, "" without one


def tournament_plot(
    tournament: Tournament, *, width: int = 480, height: int = 320
) -> TournamentPlot | None:
    """Khan et al. 2024, Figure 1: each debater config at (aggregate rating, judge accuracy on
    its self-play debates), a horizontal whisker for the rating's bootstrap interval and a
    vertical one for the accuracy's Wilson interval, and the least-squares trend. None until a
    config has both a rating and self-play verdicts."""
    entries = [e for e in tournament.entries
               if e.rating is not None and e.self_play.value is not None]  # fmt: skip
    if not entries:
        return None
    left, top, right, bottom = 52, 12, width - 24, height - 40
    lows = [e.low if e.low is not None else e.rating for e in entries]
    highs = [e.high if e.high is not None else e.rating for e in entries]
    low = min(x for x in lows if x is not None) - 20
    high = max(x for x in highs if x is not None) + 20

    def x_of(rating: float) -> float:
        return round(left + (rating - low) / (high - low) * (right - left), 1)

    def y_of(accuracy: float) -> float:
        return round(bottom - accuracy * (bottom - top), 1)

    points = []
    for index, entry in enumerate(entries):
        assert entry.rating is not None and entry.self_play.value is not None
        interval = entry.self_play.interval or (0.0, 1.0)
        rating_low = entry.low if entry.low is not None else entry.rating
        rating_high = entry.high if entry.high is not None else entry.rating
        points.append(TournamentPoint(
            name=entry.name, colour=PALETTE[index % len(PALETTE)],
            x=x_of(entry.rating), y=y_of(entry.self_play.value),
            x_low=x_of(rating_low), x_high=x_of(rating_high),
            y_low=y_of(interval[0]), y_high=y_of(interval[1]),
            label=f"{entry.name}: rating {entry.rating:.0f} ({rating_low:.0f}–{rating_high:.0f}), "
            f"self-play judge accuracy {entry.self_play.text}",
        ))  # fmt: skip
    trend = ""
    if tournament.trend is not None:
        ends = [(x, tournament.trend.intercept + tournament.trend.slope * x) for x in (low, high)]
        trend = " ".join(
            f"{'M' if i == 0 else 'L'}{x_of(x)},{y_of(min(1.0, max(0.0, y)))}"
            for i, (x, y) in enumerate(ends)
        )
    step = max(25, round((high - low) / 4 / 25) * 25)
    start = int(low // step + 1) * step
    return TournamentPlot(
        width=width, height=height, left=left, top=top, right=right, bottom=bottom,
        points=points,
        x_ticks=[Tick(x_of(v), f"{v:.0f}") for v in range(start, int(high), step)],
        y_ticks=[Tick(y_of(v), f"{v:.0%}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)], trend=trend,
    )  # fmt: skip
