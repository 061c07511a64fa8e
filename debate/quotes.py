"""Quotes in speeches: parsed from <quote>…</quote>, verified against the hidden passage by
normalised exact match, counted against the quote budget, rendered from escaped text."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

QUOTE_PATTERN = re.compile(r"<quote>(.*?)</quote>", re.DOTALL)
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Quote:
    text: str
    verified: bool
    # Past the quote budget: shown, but never counted as verified.
    over_limit: bool = False
    # Imported NYU quotes: the token span of the story they came from.
    span: tuple[int, int] | None = None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def normalise(text: str) -> str:
    """Case, punctuation, whitespace and Unicode form do not matter; words and order do."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NOT_WORD.sub(" ", folded).split())


def quotes_verify(text: str, *, passage: str, quote_char_limit: int) -> list[Quote]:
    haystack = normalise(passage)
    quotes: list[Quote] = []
    used = 0
    for match in QUOTE_PATTERN.finditer(text):
        quoted = match.group(1)
        used += len(quoted)
        needle = normalise(quoted)
        over = used > quote_char_limit
        found = bool(needle) and bool(haystack) and needle in haystack
        quotes.append(Quote(text=quoted, verified=found and not over, over_limit=over))
    return quotes


def speech_limit(text: str, *, char_limit: int) -> tuple[str, bool]:
    """Cut an over-long speech at the limit; the caller shows that it was cut."""
    if len(text) <= char_limit:
        return text, False
    return text[:char_limit], True


def speech_html(text: str, quotes: list[dict[str, object]], *, truncated: bool) -> SafeString:
    """The speech as HTML: every character of model text escaped, quotes marked up."""
    parts: list[str] = []
    position = 0
    for index, match in enumerate(QUOTE_PATTERN.finditer(text)):
        parts.append(escape(text[position : match.start()]))
        quote = quotes[index] if index < len(quotes) else {"verified": False}
        if quote.get("over_limit"):
            state, title = "unverified", "over the quote limit"
        elif quote.get("verified"):
            state, title = "verified", "verified against the passage"
        else:
            state, title = "unverified", "not found in the passage"
        parts.append(
            format_html('<q class="quote {}" title="{}">{}</q>', state, title, match.group(1))
        )
        position = match.end()
    parts.append(escape(text[position:]))
    if truncated:
        parts.append('<span class="cut" title="the speech was over the limit">[cut]</span>')
    return mark_safe("".join(parts))  # noqa: S308 - built from escaped pieces above


def _normalised_with_offsets(text: str) -> tuple[str, list[int]]:
    """`normalise(text)` built character by character, with the index in `text` each of its
    characters came from, so a match in the normalised text maps back to the original."""
    chars: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        for folded in unicodedata.normalize("NFKC", char).casefold():
            if _NOT_WORD.fullmatch(folded):
                folded = " "
                if not chars or chars[-1] == " ":
                    continue
            chars.append(folded)
            origins.append(index)
    if chars and chars[-1] == " ":
        chars.pop()
        origins.pop()
    return "".join(chars), origins


def _quote_span(haystack: str, needle: str) -> tuple[int, int] | None:
    """Where `needle` sits in `haystack` (both normalised): on word boundaries if it can."""
    if not needle:
        return None
    start = f" {haystack} ".find(f" {needle} ")
    if start < 0:
        start = haystack.find(needle)
    return None if start < 0 else (start, start + len(needle))


def passage_html(passage: str, quotes: list[tuple[str, str]]) -> SafeString:
    """The passage as HTML with each verified quote (side, text) marked where it was found,
    the same `quote verified` mark a speech gives it; every character of the passage escaped.
    Verification matched the normalised texts, so the mark is found the same way."""
    haystack, origins = _normalised_with_offsets(passage)
    sides_at: list[set[str]] = [set() for _ in passage]
    for side, text in quotes:
        span = _quote_span(haystack, normalise(text))
        if span is None:
            continue
        for index in range(origins[span[0]], origins[span[1] - 1] + 1):
            sides_at[index].add(side)
    parts: list[str] = []
    start = 0
    for end in range(1, len(passage) + 1):
        if end < len(passage) and sides_at[end] == sides_at[start]:
            continue
        piece, sides = passage[start:end], sorted(sides_at[start])
        if sides:
            by = " and ".join(side.upper() for side in sides)
            parts.append(format_html(
                '<mark class="quote verified {}" title="quoted by {}">{}</mark>',
                " ".join(f"side-{side}" for side in sides), by, piece,
            ))  # fmt: skip
        else:
            parts.append(escape(piece))
        start = end
    return mark_safe("".join(parts))  # noqa: S308 - built from escaped pieces above
