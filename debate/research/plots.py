"""Geometry for the analytics page's inline SVG plots. Numbers only: the template draws them,
so every label goes through Django's escaping."""

from __future__ import annotations

from dataclasses import dataclass

from django.template.defaultfilters import pluralize

from debate.research.analytics import GroupStats, Rating

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    r: float
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


def calibration_plot(
    groups: list[GroupStats], *, width: int = 420, height: int = 300
) -> CalibrationPlot:
    left, top, right, bottom = 48, 12, width - 12, height - 40

    def x_of(confidence: float) -> float:
        return left + (confidence - 0.5) / 0.5 * (right - left)

    def y_of(accuracy: float) -> float:
        return bottom - accuracy * (bottom - top)

    series = []
    for index, group in enumerate(groups):
        points = [
            Point(
                x=round(x_of(b.confidence), 1), y=round(y_of(b.accuracy), 1),
                r=round(2.5 + min(6.0, b.n**0.5 / 2), 1),
                label=f"{group.name}: {b.n} verdict{pluralize(b.n)}, {b.confidence:.0%} confident, "
                f"{b.accuracy:.0%} correct",
            )
            for b in group.calibration
            if b.confidence is not None and b.accuracy is not None
        ]  # fmt: skip
        path = " ".join(f"{'M' if i == 0 else 'L'}{p.x},{p.y}" for i, p in enumerate(points))
        series.append(Series(group.name, PALETTE[index % len(PALETTE)], points, path))
    return CalibrationPlot(
        width=width, height=height, left=left, top=top, right=right, bottom=bottom,
        series=series,
        x_ticks=[Tick(round(x_of(v), 1), f"{v:.0%}") for v in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)],
        y_ticks=[Tick(round(y_of(v), 1), f"{v:.0%}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)],
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


def rating_plot(ratings: list[Rating], *, width: int = 760, row: int = 24) -> RatingPlot:
    left, right = 180, width - 16
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
