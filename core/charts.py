"""The geometry every server-side SVG plot shares: numbers in, coordinates out.

A plot is a WIDTH×HEIGHT box with PAD margins on the left and bottom for the axis labels;
templates draw the coordinates, and nothing here is text from users.
"""

from __future__ import annotations

WIDTH, HEIGHT, PAD = 320.0, 160.0, 28.0


def scale(value: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    """`value` in [lo, hi] mapped onto [out_lo, out_hi], to a tenth of a pixel; a range of one
    value maps to the middle."""
    if hi == lo:
        return round((out_lo + out_hi) / 2, 1)
    return round(out_lo + (value - lo) / (hi - lo) * (out_hi - out_lo), 1)
