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
