"""The accuracy-per-arm plot: a small inline SVG drawn on the server (no chart library, no
script), each arm a point with its Wilson interval as a bar."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

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
