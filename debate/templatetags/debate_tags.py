from __future__ import annotations

from dataclasses import dataclass

from django import template
from django.utils.safestring import SafeString

from debate.models import JudgeAction, JudgeTurn, Speech, SpeechCandidate
from debate.quotes import passage_html, speech_html
from debate.selectors import DebateView

register = template.Library()


@register.simple_tag
def speech_body(speech: Speech) -> SafeString:
    """A finished speech with its quotes marked verified or unverified; all text escaped."""
    return speech_html(speech.text, speech.quotes, truncated=speech.truncated)


@register.simple_tag
def passage_body(view: DebateView) -> SafeString:
    """The passage with the debate's verified quotes marked in it; all text escaped."""
    return passage_html(view.passage or "", view.verified_quotes)


def judge_turn_name(turn: JudgeTurn) -> str:
    if turn.round == 0:
        return "prior"
    if turn.action == JudgeAction.END:
        return f"final, after round {turn.round}"
    return f"after round {turn.round}"


register.filter("judge_turn_name", judge_turn_name)


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y_a: float
    y_b: float
    tick: str
    title: str


# The chart's box (SVG user units; it scales to its column).
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 320, 130, 34, 310, 8, 106


@register.inclusion_tag("debate/_belief_chart.html")
def belief_chart(view: DebateView) -> dict[str, object]:
    """The judge's probabilities over their turns (prior, each round, final) as SVG geometry;
    the template draws it and escapes every label."""
    turns = view.judge_turns
    step = (RIGHT - LEFT) / max(len(turns) - 1, 1)

    def y_of(percent: int) -> float:
        return round(BOTTOM - percent / 100 * (BOTTOM - TOP), 1)

    points = [
        ChartPoint(
            x=round(LEFT + index * step if len(turns) > 1 else (LEFT + RIGHT) / 2, 1),
            y_a=y_of(turn.probability_a), y_b=y_of(turn.probability_b),
            tick="prior" if turn.round == 0 else f"R{turn.round}",
            title=f"{judge_turn_name(turn).capitalize()}: A {turn.probability_a}% · "
            f"B {turn.probability_b}%",
        )
        for index, turn in enumerate(turns)
    ]  # fmt: skip
    return {
        "points": points,
        "path_a": " ".join(f"{'L' if i else 'M'}{p.x},{p.y_a}" for i, p in enumerate(points)),
        "path_b": " ".join(f"{'L' if i else 'M'}{p.x},{p.y_b}" for i, p in enumerate(points)),
        "box": {
            "width": WIDTH,
            "height": HEIGHT,
            "left": LEFT,
            "right": RIGHT,
            "top": TOP,
            "bottom": BOTTOM,
            "middle": y_of(50),
        },  # fmt: skip
        "viewer": view.viewer,
    }


@register.simple_tag
def speech_candidates(view: DebateView, speech: Speech) -> list[SpeechCandidate]:
    """A best-of-n speech's candidates, if this view holds them (observers only)."""
    return view.candidates.get(speech.pk, [])
