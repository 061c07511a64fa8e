"""Server-side SVG plots for the reward-model pages: numbers in, coordinates out.

Templates draw them (templates/rewards/_charts.html); nothing here is text from users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 320.0, 160.0, 28.0


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str = ""


@dataclass(frozen=True)
class LineChart:
    points: list[Point]
    polyline: str
    y_top: str
    y_bottom: str
    x_label: str
    width: float = WIDTH
    height: float = HEIGHT
    pad: float = PAD


def _scale(value: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    if hi == lo:
        return (out_lo + out_hi) / 2
    return round(out_lo + (value - lo) / (hi - lo) * (out_hi - out_lo), 1)


def line_chart(
    values: Sequence[tuple[float, float]],
    *,
    y_range: tuple[float, float] | None = None,
    x_label: str = "",
    labels: Sequence[str] = (),
    fmt: str = "{:.2f}",
) -> LineChart:
    """(x, y) values as an SVG polyline inside a WIDTH×HEIGHT box with PAD margins."""
    if not values:
        return LineChart([], "", "", "", x_label)
    xs = [x for x, _ in values]
    ys = [y for _, y in values]
    lo, hi = y_range if y_range is not None else (min(0.0, min(ys)), max(ys) or 1.0)
    points = [
        Point(
            _scale(x, min(xs), max(xs), PAD, WIDTH - 8),
            _scale(y, lo, hi, HEIGHT - PAD, 8),
            labels[i] if i < len(labels) else "",
        )
        for i, (x, y) in enumerate(values)
    ]
    polyline = " ".join(f"{p.x},{p.y}" for p in points)
    return LineChart(points, polyline, fmt.format(hi), fmt.format(lo), x_label)


def calibration_chart(bins: Sequence[tuple[float, float, int]]) -> LineChart:
    """Reliability diagram: observed share against predicted P(chosen), both 0–1."""
    points = [
        Point(_scale(p, 0, 1, PAD, WIDTH - 8), _scale(o, 0, 1, HEIGHT - PAD, 8), f"{n} pairs")
        for p, o, n in bins
    ]
    return LineChart(points, " ".join(f"{p.x},{p.y}" for p in points), "1", "0", "predicted")
