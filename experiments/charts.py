"""The analysis page's plots: small inline SVGs drawn on the server (no chart library, no
script). Accuracy per arm (a point with its Wilson interval as a bar) and reliability (the
calibration of the probabilities an arm's answers carry)."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from core.stats import Share
from experiments.analysis import Analysis

WIDTH, ROW, LEFT, RIGHT, TOP = 440, 36, 120, 20, 24


def accuracy_svg(analysis: Analysis) -> SafeString:
    height = TOP + ROW * len(analysis.arms) + 24
    span = WIDTH - LEFT - RIGHT

    def x(share: float) -> float:
        return LEFT + share * span

    parts = [
        f'<svg class="chart arm-chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="Accuracy on gold per arm, with 95 % Wilson intervals" '
        f'preserveAspectRatio="xMinYMin meet">'
    ]
    for tick in range(0, 101, 25):
        tx = x(tick / 100)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{TOP - 8}" x2="{tx:.1f}" y2="{height - 20}" '
            'class="grid"/>'
            f'<text x="{tx:.1f}" y="{height - 6}" text-anchor="middle" class="tick">{tick} %</text>'
        )
    for row, figures in enumerate(analysis.arms):
        y = TOP + ROW * row + ROW / 2 - 8
        parts.append(
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" class="label">'
            f"{escape(figures.arm.name[:18])}</text>"
        )
        share = figures.accuracy
        if share.value is None or share.interval is None:
            parts.append(f'<text x="{LEFT + 4}" y="{y + 4:.1f}" class="tick">no labels</text>')
            continue
        low, high = share.interval
        parts.append(
            f'<line x1="{x(low):.1f}" y1="{y:.1f}" x2="{x(high):.1f}" y2="{y:.1f}" class="ci">'
            f"<title>{escape(share.text)}</title></line>"
            f'<circle cx="{x(share.value):.1f}" cy="{y:.1f}" r="5" class="point">'
            f"<title>{escape(share.text)}</title></circle>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (arm names escaped above; the rest is ours)


# The reliability plot: one series per arm whose answers carry a probability.
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")
R_WIDTH, R_HEIGHT, R_LEFT, R_RIGHT, R_TOP, R_BOTTOM = 440, 312, 48, 20, 30, 44


def reliability_svg(analysis: Analysis) -> SafeString:
    """Each calibrated arm's reliability bins: a dot at (mean confidence, share correct), its
    area growing with n, a whisker for the share's Wilson 95 % interval; the diagonal is
    perfect calibration. Empty when no arm's answers carry a probability."""
    calibrated = [f for f in analysis.arms if f.calibration is not None and f.calibration.n]
    if not calibrated:
        return mark_safe("")
    bottom, right = R_HEIGHT - R_BOTTOM, R_WIDTH - R_RIGHT

    def x(confidence: float) -> float:
        return R_LEFT + (confidence - 0.5) / 0.5 * (right - R_LEFT)

    def y(share: float) -> float:
        return bottom - share * (bottom - R_TOP)

    parts = [
        f'<svg class="chart reliability-chart" viewBox="0 0 {R_WIDTH} {R_HEIGHT}" role="img" '
        'aria-label="Reliability: share correct against confidence, per arm" '
        'preserveAspectRatio="xMinYMin meet">',
        f'<path class="grid" d="M{x(0.5):.1f},{y(0.5):.1f} L{x(1.0):.1f},{y(1.0):.1f}" '
        'stroke-dasharray="4 3"/>',
    ]
    for tick in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="{R_TOP}" x2="{x(tick):.1f}" y2="{bottom}" class="grid"/>'
            f'<text x="{x(tick):.1f}" y="{bottom + 14}" text-anchor="middle" class="tick">'
            f"{tick:.0%}</text>"
        )
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<text x="{R_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">'
            f"{tick:.0%}</text>"
        )
    parts.append(
        f'<text x="{right}" y="{R_HEIGHT - 8}" text-anchor="end" class="tick">'
        "confidence in the favoured answer</text>"
    )
    for index, figures in enumerate(calibrated):
        colour = PALETTE[index % len(PALETTE)]
        name = escape(figures.arm.name[:24])
        parts.append(
            f'<g class="series" data-arm="{escape(figures.arm.name)}" fill="{colour}" '
            f'stroke="{colour}">'
            f'<rect x="{R_LEFT + 6 + 130 * index}" y="2" width="9" height="9"/>'
            f'<text x="{R_LEFT + 19 + 130 * index}" y="10" class="tick" stroke="none">{name}</text>'
        )
        assert figures.calibration is not None
        for b in figures.calibration.bins:
            if not b.n or b.confidence is None:
                continue
            share = Share(b.correct, b.n)
            low, high = share.interval or (0.0, 1.0)
            cx, cy = x(b.confidence), y(b.correct / b.n)
            label = escape(
                f"{figures.arm.name}: {b.n} answer{'s' if b.n != 1 else ''} "
                f"{b.low:.0%}–{b.high:.0%} confident, {share.text}"
            )
            parts.append(
                f'<line x1="{cx:.1f}" y1="{y(low):.1f}" x2="{cx:.1f}" y2="{y(high):.1f}" '
                f'class="whisker"/><circle cx="{cx:.1f}" cy="{cy:.1f}" '
                f'r="{2.5 + min(6.0, b.n**0.5 / 2):.1f}" class="bin" fill-opacity="0.7">'
                f"<title>{label}</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (names and titles escaped above)
