"""The loss chart of a training run as SVG coordinates: numbers in, coordinates out, drawn by
templates/llm/_loss_chart.html, in the geometry every plot shares (core/charts.py); the two
series share one scale so train and eval loss compare."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.charts import HEIGHT, PAD, WIDTH, scale


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
        scaled = [(scale(step, 0, x_hi, PAD, WIDTH - 8), scale(loss, 0, y_hi, HEIGHT - PAD, 8),
                   f"{what} loss {loss:.3f} at step {step}") for step, loss in points]  # fmt: skip
        return Series(" ".join(f"{x},{y}" for x, y, _ in scaled), scaled)

    return LossChart(series(train, "train"), series(evaluation, "eval"), f"{y_hi:.2f}", "0",
                     f"step {x_hi}", False)  # fmt: skip
