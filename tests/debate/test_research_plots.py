"""The analytics page's plots (debate/research/plots.py): small-n calibration bins draw no
spikes, every bin shows its interval, the last tick fits, and a phone can read both charts."""

import pytest
from django.core.management import call_command

from core.stats import Share
from debate.research.analytics import CalibrationBin, GroupStats, Rating
from debate.research.plots import LINE_MIN_N, calibration_plot, rating_plot
from tests.helpers import browser_login


def group(*bins: tuple[float, int, float]) -> GroupStats:
    """Bins as (mean confidence, n, accuracy)."""
    calibration = [CalibrationBin(round(c - 0.05, 1), round(c + 0.05, 1), n, c, a)
                   for c, n, a in bins]  # fmt: skip
    return GroupStats(name="judges", accuracy=Share(1, 2), mean_turns=0, mean_score=0, brier=0,
                      ece=0, calibration=calibration, by_turns=[])  # fmt: skip


def test_bins_of_one_verdict_are_hollow_off_the_line_and_every_bin_has_its_interval():
    plot = calibration_plot([group((0.55, 1, 0.0), (0.65, 40, 0.7), (0.75, 2, 1.0),
                                   (0.85, 30, 0.8))])  # fmt: skip
    [series] = plot.series
    assert [p.solid for p in series.points] == [False, True, False, True]
    solid = [p for p in series.points if p.solid]
    # The line joins only the well-filled bins: two points, no spike to 0 % or 100 %.
    assert series.path == f"M{solid[0].x},{solid[0].y} L{solid[1].x},{solid[1].y}"
    lonely = series.points[0]
    assert lonely.y == plot.bottom  # 0 % correct
    assert lonely.high < plot.bottom - 100  # Wilson: one wrong verdict still allows ~79 %
    assert "1 verdict, 55% confident, 0% correct (95 % interval 0%–79%)" in lonely.label
    for p in series.points:
        assert p.high <= p.y <= p.low  # SVG y grows downwards
    assert LINE_MIN_N == 5


def test_the_last_tick_sits_inside_the_plot():
    plot = calibration_plot([group((0.95, 10, 0.9))])
    last = plot.x_ticks[-1]
    assert last.label == "100%"
    assert last.at + 14 <= plot.width  # half of "100%" at 11 px
    ratings = rating_plot([Rating("a", 1000, 900, 1100, 5), Rating("b", 1050, 980, 1120, 5)])
    assert all(tick.at + 14 <= ratings.width for tick in ratings.ticks)


@pytest.mark.browser
def test_both_charts_read_at_390_px(live_asgi_server, browser):
    call_command("seed_demo", password="demo-password-for-tests", verbosity=0)
    for width in (1366, 390):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        browser_login(page, live_asgi_server.url, "researcher", "demo-password-for-tests")
        page.goto(f"{live_asgi_server.url}/debates/analytics/")
        assert page.locator("svg.ratings text").count() > 5
        # The smallest label of each chart, as rendered (its box's height in CSS px).
        for chart in ("svg.calibration", "svg.ratings"):
            height = page.evaluate(
                """sel => Math.min(...[...document.querySelectorAll(sel + ' text')]
                     .map(t => t.getBoundingClientRect().height))""",
                chart,
            )
            assert height >= 12, (width, chart, height)  # ~10 px type or larger
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        # The calibration plot's last tick is drawn inside the plot.
        inside = page.evaluate(
            """() => { const svg = document.querySelector('svg.calibration');
                 const box = svg.getBoundingClientRect();
                 return [...svg.querySelectorAll('text')].every(t => {
                   const r = t.getBoundingClientRect();
                   return r.left >= box.left - 0.5 && r.right <= box.right + 0.5; }); }"""
        )
        assert inside, width
        context.close()
