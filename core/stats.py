"""A share with its n and its interval, printed to the precision its n carries: the one
proportion every page, API answer and gate cites (debate analytics, reward-model gates, the
automatic judge)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

CONFIDENCE = 0.95
METHOD = "Wilson 95 % interval"


@dataclass(frozen=True)
class Share:
    """k right out of n, with the Wilson score interval (scipy.stats.binomtest's
    `proportion_ci(method="wilson")`), which stays inside 0–1 and keeps its coverage at the
    small n a new reward model's held-out set has."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @cached_property
    def interval(self) -> tuple[float, float] | None:
        if not self.n:
            return None
        from scipy.stats import binomtest

        ci = binomtest(self.k, self.n).proportion_ci(CONFIDENCE, method="wilson")
        return float(ci.low), float(ci.high)

    @property
    def low(self) -> float | None:
        return self.interval[0] if self.interval else None

    @property
    def high(self) -> float | None:
        return self.interval[1] if self.interval else None

    @property
    def beats_chance(self) -> bool:
        """The interval's lower bound is above 50 %."""
        return self.low is not None and self.low > 0.5

    def _percent(self, x: float) -> str:
        # Precision follows n: whole percents below 1,000 (one pair moves a share of 9 by
        # 11 points), one decimal from there on.
        return f"{100 * x:.0f}" if self.n < 1000 else f"{100 * x:.1f}"

    @property
    def percent(self) -> str:
        return "–" if self.value is None else f"{self._percent(self.value)} %"

    @property
    def interval_text(self) -> str:
        if self.interval is None:
            return ""
        return f"{self._percent(self.interval[0])}–{self._percent(self.interval[1])} %"

    @property
    def text(self) -> str:
        """E.g. "92 % (11/12; 95 % CI 65–99 %, Wilson)"."""
        if not self.n:
            return "– (n = 0)"
        return f"{self.percent} ({self.k}/{self.n}; 95 % CI {self.interval_text}, Wilson)"


def share_of(value: float | None, n: int, k: int | None = None) -> Share | None:
    """The Share of a stored figure; runs before k was kept give k = round(value × n)."""
    if value is None or not n:
        return None
    return Share(k if k is not None else round(value * n), n)
