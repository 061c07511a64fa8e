"""The loss chart of a training run as SVG coordinates: numbers in, coordinates out, drawn by
templates/llm/_loss_chart.html. The geometry is the reward pages' (rewards/charts.py), which
llm may not import; the two series share one scale so train and eval loss compare."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 320.0, 160.0, 28.0


@dataclass(frozen=True)
class Series:
    polyline: str
    points: list[tuple[float, float, str]]  # x, y, tooltip


@dataclass(frozen=True)
class LossChart:
    train: Series
    eval: Series
    y_top: str
    y_bottom: str
    x_right: str
    empty: bool
    width: float = WIDTH
    height: float = HEIGHT
    pad: float = PAD


def _scale(value: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    if hi == lo:
        return round((out_lo + out_hi) / 2, 1)
    return round(out_lo + (value - lo) / (hi - lo) * (out_hi - out_lo), 1)


def loss_chart(
    train: Sequence[tuple[int, float]], evaluation: Sequence[tuple[int, float]]
) -> LossChart:
    """Train and eval loss against the step, on one scale from 0 to the largest loss."""
    values = [*train, *evaluation]
    if not values:
        empty = Series("", [])
        return LossChart(empty, empty, "", "", "", True)
    x_hi = max(max(step for step, _ in values), 1)
    y_hi = max(loss for _, loss in values) or 1.0

    def series(points: Sequence[tuple[int, float]], what: str) -> Series:
        scaled = [(_scale(step, 0, x_hi, PAD, WIDTH - 8), _scale(loss, 0, y_hi, HEIGHT - PAD, 8),
                   f"{what} loss {loss:.3f} at step {step}") for step, loss in points]  # fmt: skip
        return Series(" ".join(f"{x},{y}" for x, y, _ in scaled), scaled)

    return LossChart(series(train, "train"), series(evaluation, "eval"), f"{y_hi:.2f}", "0",
                     f"step {x_hi}", False)  # fmt: skip
