"""Assistance prompts and the reading of a model's suggestion. Model output is untrusted:
what is parsed here is only matched against the item kind's own label values."""

from __future__ import annotations

import re
from typing import Any

from annotations.kinds import ItemKind
from experiments.models import Assistance

DEFAULT_PROMPTS = {
    Assistance.CRITIQUE: (
        "Read the question and the answers below, then point out any mistakes, in two or "
        "three short sentences.\n\n{item}"
    ),
    Assistance.SUGGESTION: (
        "Read the question and the answers below. Which answer is better? Reply with the "
        "letter first, then how sure you are from 50 to 100, e.g. 'A 80'.\n\n{item}"
    ),
}


def item_text(kind: ItemKind, payload: dict[str, Any]) -> str:
    """The item as plain text for a prompt."""
    if kind.pair_fields is not None:
        system, prompt, a, b = kind.pair(payload)
        head = f"{system}\n\n" if system else ""
        return f"{head}Question: {prompt}\n\nAnswer A: {a}\n\nAnswer B: {b}"
    return "\n\n".join(f"{key}: {value}" for key, value in payload.items() if value)


def prompt_text(template: str, kind: ItemKind, payload: dict[str, Any]) -> str:
    # str.replace, not format: a researcher's prompt may hold braces of its own.
    return template.replace("{item}", item_text(kind, payload))


# Capital letters only: a lower-case "a" is an article, not an answer.
_PAIR = re.compile(r"\b(?:(?i:answer)\s+)?([AB])\b(?:\D{0,20}?(\d{2,3})\s*%?)?")
_RATING = re.compile(r"\b([1-7])\b(?:\D{0,20}?(\d{2,3})\s*%?)?")


def suggestion_parse(kind: ItemKind, text: str) -> tuple[dict[str, Any] | None, float | None]:
    """The label value a suggestion names (first A/B for comparisons, first 1–7 rating for
    Likert) and its confidence (50–100, as a share), or None for what it does not say."""
    pattern = _PAIR if kind.pair_fields is not None else _RATING
    found = pattern.search(text)
    if found is None:
        return None, None
    answer, sure = found.groups()
    raw = answer.lower() if kind.pair_fields is not None else int(answer)
    value = kind.value_from_scalar(raw).model_dump(mode="json")
    confidence = None
    if sure is not None and 50 <= int(sure) <= 100:
        confidence = int(sure) / 100
    return value, confidence
