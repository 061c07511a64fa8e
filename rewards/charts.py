"""Server-side SVG plots for the reward-model pages: numbers in, coordinates out.

Templates draw them (templates/rewards/_charts.html); nothing here is text from users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.charts import HEIGHT, PAD, WIDTH, scale


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
            scale(x, min(xs), max(xs), PAD, WIDTH - 8),
            scale(y, lo, hi, HEIGHT - PAD, 8),
            labels[i] if i < len(labels) else "",
        )
        for i, (x, y) in enumerate(values)
    ]
    polyline = " ".join(f"{p.x},{p.y}" for p in points)
    return LineChart(points, polyline, fmt.format(hi), fmt.format(lo), x_label)


def calibration_chart(bins: Sequence[tuple[float, float, int]]) -> LineChart:
    """Reliability diagram: observed share against predicted P(chosen), both 0–1."""
    points = [
        Point(scale(p, 0, 1, PAD, WIDTH - 8), scale(o, 0, 1, HEIGHT - PAD, 8), f"{n} pairs")
        for p, o, n in bins
    ]
    return LineChart(points, " ".join(f"{p.x},{p.y}" for p in points), "1", "0", "predicted")


# --- best-of-n over-optimisation (rewards/overoptimisation.py) ------------------------------
BON_WIDTH, BON_HEIGHT, BON_LEFT, BON_BOTTOM, BON_TOP, BON_RIGHT = (
    560.0,
    300.0,
    44.0,
    34.0,
    22.0,
    12.0,
)


@dataclass(frozen=True)
class ErrorPoint:
    x: float
    y: float
    y_low: float
    y_high: float
    label: str


@dataclass(frozen=True)
class Series:
    name: str  # e.g. "gold, proxy helpfulness v3"
    role: str  # "proxy" or "gold"
    colour: int  # which of the page's series colours (one per proxy)
    points: list[ErrorPoint]
    fit: str  # the fitted curve as polyline points


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class BestOfNChart:
    series: list[Series]
    peaks: list[ErrorPoint]  # the fitted gold peak of each proxy (on the fitted curve)
    x_ticks: list[Tick]  # √KL along the bottom
    n_ticks: list[Tick]  # n along the top
    y_ticks: list[Tick]
    zero_y: float
    width: float = BON_WIDTH
    height: float = BON_HEIGHT
    left: float = BON_LEFT
    right: float = BON_WIDTH - BON_RIGHT
    top: float = BON_TOP
    bottom: float = BON_HEIGHT - BON_BOTTOM


@dataclass(frozen=True)
class CurveInput:
    """One proxy's curves for the chart: (n, d, value, low, high) rows and the fit."""

    name: str
    proxy: list[tuple[int, float, float, float, float]]
    gold: list[tuple[int, float, float, float, float]]
    alpha: float
    beta: float
    alpha_proxy: float
    peak_d: float | None


def best_of_n_chart(curves: Sequence[CurveInput], *, fit_steps: int = 40) -> BestOfNChart:
    """Proxy (dashed) and gold (solid) score against √KL for each proxy, with the 95 %
    bootstrap interval of every point, the fitted curves, and the gold peak."""
    rows = [r for c in curves for r in (*c.proxy, *c.gold)]
    if not rows:
        return BestOfNChart([], [], [], [], [], 0.0)
    d_max = max(r[1] for r in rows) or 1.0

    def fit_values(c: CurveInput) -> list[tuple[float, float, float]]:
        ds = [d_max * i / fit_steps for i in range(fit_steps + 1)]
        return [(d, d * c.alpha_proxy, d * (c.alpha - c.beta * d)) for d in ds]

    ys = [v for r in rows for v in r[2:]]
    # A curve without gold rows (people are its gold) draws no gold fit either.
    ys += [v for c in curves for _, p, g in fit_values(c) for v in ((p, g) if c.gold else (p,))]
    lo, hi = min(0.0, *ys), max(0.0, *ys)
    if hi == lo:
        hi = lo + 1.0
    margin = (hi - lo) * 0.05
    lo, hi = lo - margin, hi + margin
    top, bottom = BON_TOP, BON_HEIGHT - BON_BOTTOM
    left, right = BON_LEFT, BON_WIDTH - BON_RIGHT

    def sx(d: float) -> float:
        return scale(d, 0.0, d_max, left, right)

    def sy(v: float) -> float:
        return scale(v, lo, hi, bottom, top)

    series: list[Series] = []
    peaks: list[ErrorPoint] = []
    for colour, c in enumerate(curves):
        fits = fit_values(c)
        for role, data, idx in (("proxy", c.proxy, 1), ("gold", c.gold, 2)):
            if not data:
                continue
            points = [
                ErrorPoint(sx(d), sy(v), sy(low), sy(high),
                           f"{role} ({c.name}), n = {n}: {v:.3f} (95 % CI {low:.3f} to {high:.3f})")
                for n, d, v, low, high in data
            ]  # fmt: skip
            fit = " ".join(f"{sx(f[0])},{sy(f[idx])}" for f in fits)
            series.append(Series(f"{role}, {c.name}", role, colour, points, fit))
        if c.peak_d is not None and 0 <= c.peak_d <= d_max:
            value = c.peak_d * (c.alpha - c.beta * c.peak_d)
            peaks.append(ErrorPoint(sx(c.peak_d), sy(value), sy(value), sy(value),
                                    f"gold peak ({c.name}): √KL = {c.peak_d:.2f}"))  # fmt: skip
    step = 0.5 if d_max <= 2.5 else 1.0
    x_ticks = [Tick(sx(i * step), f"{i * step:g}") for i in range(int(d_max / step) + 1)]
    n_ticks = [Tick(sx(d), str(n)) for n, d, *_ in (curves[0].proxy if curves else [])]
    y_ticks = [Tick(sy(v), f"{v:+.2f}" if v else "0") for v in (lo + margin, 0.0, hi - margin)]
    return BestOfNChart(series, peaks, x_ticks, n_ticks, y_ticks, sy(0.0))


@dataclass(frozen=True)
class HumanGoldChart:
    """Best-of-n's win rate over best-of-1 against √KL (rewards/human_gold.py)."""

    points: list[ErrorPoint]
    fit: str  # 0.5 + d(α − β d) as polyline points; "" without a fit
    peak: ErrorPoint | None
    x_ticks: list[Tick]
    n_ticks: list[Tick]
    y_ticks: list[Tick]
    half_y: float  # where 0.5 (no better than one sample) sits
    width: float = BON_WIDTH
    height: float = BON_HEIGHT
    left: float = BON_LEFT
    right: float = BON_WIDTH - BON_RIGHT
    top: float = BON_TOP
    bottom: float = BON_HEIGHT - BON_BOTTOM

    @property
    def plot_width(self) -> float:
        return self.right - self.left

    @property
    def plot_height(self) -> float:
        return self.bottom - self.top


def human_gold_chart(
    rows: Sequence[tuple[int, float, float | None, float | None, float | None, int]],
    *, alpha: float | None, beta: float | None, peak_d: float | None, fit_steps: int = 40,
) -> HumanGoldChart:  # fmt: skip
    """(n, d, win rate, low, high, decisive labels) rows on a 0–1 scale, n = 1 drawn at
    0.5 (by construction); rows without labels get a tick but no dot."""
    top, bottom = BON_TOP, BON_HEIGHT - BON_BOTTOM
    left, right = BON_LEFT, BON_WIDTH - BON_RIGHT
    d_max = max((r[1] for r in rows), default=1.0) or 1.0

    def sx(d: float) -> float:
        return scale(d, 0.0, d_max, left, right)

    def sy(v: float) -> float:
        return scale(min(1.0, max(0.0, v)), 0.0, 1.0, bottom, top)

    def sy_unclamped(v: float) -> float:
        # The fitted curve is not a rate and can leave 0–1: drawn as it is and clipped to the
        # plot by the template, so it leaves the frame where it does instead of running flat
        # along the edge.
        return scale(v, 0.0, 1.0, bottom, top)

    points = [ErrorPoint(sx(0.0), sy(0.5), sy(0.5), sy(0.5), "n = 1: 0.5 by construction")]
    for n, d, value, low, high, labels in rows:
        if value is None or low is None or high is None:
            continue
        points.append(ErrorPoint(sx(d), sy(value), sy(low), sy(high),
                                 f"n = {n}: best-of-n wins {value:.2f} (Wilson 95 % CI "
                                 f"{low:.2f} to {high:.2f}, n = {labels} labels)"))  # fmt: skip
    fit, peak = "", None
    if alpha is not None and beta is not None:
        ds = [d_max * i / fit_steps for i in range(fit_steps + 1)]
        fit = " ".join(f"{sx(d)},{sy_unclamped(0.5 + d * (alpha - beta * d))}" for d in ds)
        if peak_d is not None and 0 <= peak_d <= d_max:
            value = 0.5 + peak_d * (alpha - beta * peak_d)
            peak = ErrorPoint(sx(peak_d), sy(value), sy(value), sy(value),
                              f"fitted human gold peak: √KL = {peak_d:.2f}")  # fmt: skip
    step = 0.5 if d_max <= 2.5 else 1.0
    x_ticks = [Tick(sx(i * step), f"{i * step:g}") for i in range(int(d_max / step) + 1)]
    n_ticks = [Tick(sx(0.0), "1"), *(Tick(sx(r[1]), str(r[0])) for r in rows)]
    y_ticks = [Tick(sy(v), f"{v:g}") for v in (0.0, 0.5, 1.0)]
    return HumanGoldChart(points, fit, peak, x_ticks, n_ticks, y_ticks, sy(0.5))
