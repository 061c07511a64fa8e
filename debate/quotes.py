"""Quotes in speeches: parsed from <quote>…</quote>, verified against the hidden passage by
normalised exact match, counted against the quote budget, rendered from escaped text.

The one check: a live speech (quotes_verify) and an imported one (quotes_recheck) get their
verified flags from `_found` here; an imported record's own flags are never trusted."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

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
    # The published span ran past the story's end and was cut at it (NYU rooms).
    span_clipped: bool = False

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def normalise(text: str) -> str:
    """Case, punctuation, whitespace and Unicode form do not matter; words and order do."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NOT_WORD.sub(" ", folded).split())


@lru_cache(maxsize=4)
def _normalised_passage(passage: str) -> str:
    # A debate's speeches are checked one after another against one passage.
    return normalise(passage)


def _found(quoted: str, haystack: str) -> bool:
    """`quoted` occurs in the passage (`haystack`: the passage normalised). A quote of only
    punctuation or space verifies nothing."""
    needle = normalise(quoted)
    return bool(needle) and bool(haystack) and needle in haystack


def quotes_verify(text: str, *, passage: str, quote_char_limit: int) -> list[Quote]:
    """A live speech's quotes: found in the passage and within the quote budget."""
    return quotes_recheck(text, passage=passage, quote_char_limit=quote_char_limit, given=())


def quotes_recheck(
    text: str, *, passage: str, quote_char_limit: int | None, given: Sequence[Quote]
) -> list[Quote]:
    """The quotes of `text`, verified by Arbiter against `passage`. `given` (an imported
    file's quotes, one per <quote> tag, in order) keeps only its provenance (span, clipped)
    and its over-limit marks: the file's verified flags are never read. With a budget
    (`quote_char_limit`) it is counted as for a live speech; None (NYU rooms, whose app
    enforced its budget on its own tokens) keeps the file's over-limit marks, which can only
    unverify a quote."""
    haystack = _normalised_passage(passage)
    quotes: list[Quote] = []
    used = 0
    for index, match in enumerate(QUOTE_PATTERN.finditer(text)):
        quoted = match.group(1)
        prior = given[index] if index < len(given) else None
        used += len(quoted)
        if quote_char_limit is None:
            over = prior is not None and prior.over_limit
        else:
            over = used > quote_char_limit
        quotes.append(Quote(
            text=quoted, verified=_found(quoted, haystack) and not over, over_limit=over,
            span=prior.span if prior else None,
            span_clipped=prior.span_clipped if prior else False,
        ))  # fmt: skip
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
        if quote.get("span_clipped"):
            title += "; its published span ran past the story's end and was cut there"
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
