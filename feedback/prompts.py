"""What a model annotator is asked, per queue kind, and how its answers become a label.

Two shapes cover the four queue kinds without naming any other app's kind: a kind whose items
compare two responses (`ItemKind.pair_fields`: pairwise, debate judgment) is a *comparison*,
asked in both orders (A and B swapped; what the kind writes beside the pair, a debate's
transcript, comes as $context); a kind whose label is a 1–7 `rating` (Likert, tree node) is a
*rating*, asked on the scale both ways up ($scale: 1 = not at all … 7 = fully, then reversed),
so a model's preference for a digit shows as its two orders disagreeing. Prompts are
`string.Template`s ($name): a researcher's template can name only the fields listed here, and
nothing else (no attribute access, as str.format would allow).

The defaults put everything that is the same for every item first: the instruction and the
question, then the principle, then the item, and after it only a short cue that the answer
follows. A labelling run asks one principle's items in one batch (feedback.labelling), and the
transformers backend runs the prompts' common prefix once a batch, so what stands before the
item is paid once and only the item and the cue row by row. The cue ends the prompt so that
the option (a letter, a digit) is still the reply's first token. A rating's two orders differ
only in $scale, so it stands in the cue, not in the shared question. Changing a default changes
no stored run: a run keeps the template it started with (LabellingRun.prompt_template) and
each label its exact prompts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from string import Template
from typing import Any

from annotations.kinds import ItemKind

PAIR_OPTIONS = ("A", "B")
RATING_OPTIONS = tuple(str(n) for n in range(1, 8))

COMPARISON_FIELDS = ("principle", "system", "prompt", "context", "response_a", "response_b")
RATING_FIELDS = ("principle", "item", "scale")
SCALE_UP = "from 1 (not at all) to 7 (fully)"
SCALE_DOWN = "from 1 (fully) to 7 (not at all)"

COMPARISON_DEFAULT = (
    "Judge two responses by one principle: which response follows the principle better? "
    "Answer with one letter: A or B.\n\n"
    "Principle: $principle\n\n"
    "Prompt: $prompt\n\n"
    "${context}Response A: $response_a\n\n"
    "Response B: $response_b\n\n"
    "Answer: A or B"
)
RATING_DEFAULT = (
    "Rate a text by one principle: how well does it follow the principle? "
    "Answer with one digit.\n\n"
    "Principle: $principle\n\n"
    "$item\n\n"
    "Rating $scale:"
)


class PromptInvalid(ValueError):
    pass


@dataclass(frozen=True)
class Order:
    """One way of asking: `name` is "ab" (as stored) or "ba" (the responses swapped) on a
    comparison, "up" (1 = not at all) or "down" (the scale reversed) on a rating."""

    name: str
    text: str


@dataclass(frozen=True)
class Reading:
    """A principle's label of one item, combined over the orders asked."""

    value: dict[str, Any] | None  # None: no option named in some order
    probability: float | None
    distribution: list[float]
    orders_disagree: bool | None


@dataclass(frozen=True)
class Shape:
    comparison: bool
    options: tuple[str, ...]
    fields: tuple[str, ...]
    default: str
    required: tuple[str, ...]  # the fields a template must name


def kind_shape(kind: ItemKind) -> Shape:
    if kind.pair_fields is not None and kind.value_field == "choice":
        return Shape(True, PAIR_OPTIONS, COMPARISON_FIELDS, COMPARISON_DEFAULT, ("principle",))
    if kind.value_field == "rating":
        return Shape(False, RATING_OPTIONS, RATING_FIELDS, RATING_DEFAULT, ("principle", "scale"))
    raise PromptInvalid(f"a model annotator cannot label {kind.title} items")


def template_check(template: str, shape: Shape) -> None:
    """Raise PromptInvalid unless the template is well formed, names the shape's required
    fields ($principle; $scale on ratings, which is how the scale is turned round) and names
    only this shape's fields."""
    parsed = Template(template)
    if not parsed.is_valid():
        raise PromptInvalid("the prompt has a stray $; write $$ for a dollar sign")
    names = parsed.get_identifiers()
    unknown = sorted(set(names) - set(shape.fields))
    if unknown:
        allowed = ", ".join(f"${name}" for name in shape.fields)
        raise PromptInvalid(f"unknown field {', '.join(unknown)}: the prompt may use {allowed}")
    for needed in shape.required:
        if needed not in names:
            raise PromptInvalid(f"the prompt must name ${needed}")


def _item_text(payload: dict[str, Any]) -> str:
    lines = []
    for name, value in payload.items():
        if value in ("", [], None) or name == "source_id":
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{name.replace('_', ' ').capitalize()}: {shown}")
    return "\n\n".join(lines)


def orders_for(
    kind: ItemKind, shape: Shape, template: str, payload: dict[str, Any], principle: str
) -> list[Order]:
    """The user texts to ask for one item and principle: both orders, the responses swapped
    on a comparison, the scale reversed on a rating."""
    parsed = Template(template)
    if shape.comparison:
        system, prompt, a, b = kind.pair(payload)
        fields = {"principle": principle, "system": system, "prompt": prompt}

        def context(swapped: bool) -> str:
            text = kind.pair_context(payload, swapped) if kind.pair_context else ""
            return f"{text}\n\n" if text else ""

        return [
            Order("ab", parsed.substitute(fields, context=context(False), response_a=a,
                                          response_b=b)),
            Order("ba", parsed.substitute(fields, context=context(True), response_a=b,
                                          response_b=a)),
        ]  # fmt: skip
    item = _item_text(payload)
    return [
        Order("up", parsed.substitute(principle=principle, item=item, scale=SCALE_UP)),
        Order("down", parsed.substitute(principle=principle, item=item, scale=SCALE_DOWN)),
    ]


def _pick(probabilities: Sequence[float]) -> int | None:
    """The option with the most probability; None when two share the top."""
    top = max(probabilities)
    winners = [n for n, p in enumerate(probabilities) if abs(p - top) < 1e-12]
    return winners[0] if len(winners) == 1 else None


def comparison_reading(first: Sequence[float] | None, second: Sequence[float] | None) -> Reading:
    """Both orders of a comparison combined: P(A) is the mean of P(A) asked as stated and
    P(A) asked swapped (where A stood second). A model that always answers "A" gets 0.5, and
    its orders disagree. An order that named no option leaves the label without one."""
    if first is None or second is None:
        return Reading(None, None, [], None)
    p_a = (first[0] + second[1]) / 2
    pick_first, pick_second = _pick(first), _pick(second)
    # In the swapped order, option 0 ("A") is the stored response B.
    swapped = None if pick_second is None else 1 - pick_second
    disagree = None if pick_first is None or swapped is None else pick_first != swapped
    p_a = round(p_a, 12)  # 0.5 is 0.5, whatever the float sum made of it
    choice = "a" if p_a > 0.5 else "b" if p_a < 0.5 else "tie"
    return Reading({"choice": choice}, p_a, [p_a, round(1 - p_a, 12)], disagree)


def rating_reading(up: Sequence[float] | None, down: Sequence[float] | None) -> Reading:
    """Both ways up of a rating combined: P(rating r) is the mean of P(r) asked 1 = not at
    all and P(8 − r) asked with the scale reversed. A model that always answers "1" gets an
    even 1-or-7 split and its orders disagree. An order that named no option leaves the label
    without one."""
    if up is None or down is None:
        return Reading(None, None, [], None)
    last = len(up) - 1
    combined = [round((up[r] + down[last - r]) / 2, 12) for r in range(len(up))]
    pick_up, pick_down = _pick(up), _pick(down)
    disagree = None if pick_up is None or pick_down is None else pick_up != last - pick_down
    best = max(range(len(combined)), key=lambda n: combined[n])
    return Reading({"rating": best + 1}, combined[best], combined, disagree)
