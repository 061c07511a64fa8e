"""Text in and out of the model: prompts from templates, decompositions from what a small
model actually writes (numbered lists, bullets, stray prose), normalised memo keys."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# The version of how prompts are built from a tree's templates (prompt_render, context_block,
# subanswers_block, llm.generation.chat_messages): bump it when any of them changes what a
# model is shown, so the memo stops reusing answers given to the old prompts.
PROMPT_VERSION = 1

PLACEHOLDERS = ("{question}", "{context}", "{max_children}", "{subanswers}")
REQUIRED = {
    "decompose_prompt": ("{question}",),
    "answer_prompt": ("{question}",),
    "compose_prompt": ("{question}", "{subanswers}"),
}

_LIST_ITEM = re.compile(
    r"^\s*(?:(?:sub-?question\s*)?\(?\d{1,2}[.):]\)?|[-*•·–]|\(?[a-hA-H][.)])\s+(?P<text>.+)$",
    re.IGNORECASE,
)
# "1. Who? 2. Where?" on one line: split before each number that follows a question mark.
_INLINE_SPLIT = re.compile(r"(?<=\?)\s+(?=\(?\d{1,2}[.)]\s)")
_NONE = re.compile(r"^\W*(none|no sub-?questions?|n/a)\W*$", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:sub-?question|question|q)\s*\d*\s*[:.-]\s*", re.IGNORECASE)
MIN_QUESTION_CHARS = 2
# Markdown a model puts around a list item: **1. …**, ## 1. …
_EMPHASIS = re.compile(r"^\s*(?:\*\*|__|#+\s+)")


def prompt_render(template: str, **values: str) -> str:
    """Fill the known placeholders only: a brace a researcher typed stays as written."""
    text = template
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def context_block(context: str) -> str:
    return f"Context:\n{context.strip()}\n\n" if context.strip() else ""


def subanswers_block(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(
        f"{number}. {question}\n   Answer: {answer}"
        for number, (question, answer) in enumerate(pairs, start=1)
    )


def decomposition_parse(raw: str, *, parent_question: str, limit: int) -> list[str]:
    """The sub-questions in a model's (or a person's) decomposition, at most `limit`.

    List items are preferred (numbered, lettered, bulleted); failing those, lines that end
    in a question mark. Labels ("Sub-question 1:"), duplicates, fragments and a copy of the
    parent question are dropped. NONE or nothing usable gives [].
    """
    if limit <= 0:
        return []
    lines: list[str] = []
    for line in raw.replace("\r", "\n").split("\n"):
        line = _EMPHASIS.sub("", line)
        lines.extend(part for part in _INLINE_SPLIT.split(line) if part.strip())
    if any(_NONE.match(line) for line in lines[:2]) and not any(
        _LIST_ITEM.match(line) for line in lines
    ):
        return []
    items = [m.group("text") for line in lines if (m := _LIST_ITEM.match(line))]
    if not items:
        items = [line for line in lines if line.strip().endswith("?")]
    found: list[str] = []
    seen = {question_key(parent_question)}
    for item in items:
        text = _LABEL.sub("", item).strip().strip('"*_ ').strip()
        if len(text) < MIN_QUESTION_CHARS or not any(c.isalpha() for c in text):
            continue
        key = question_key(text)
        if key in seen:
            continue
        seen.add(key)
        found.append(text[:2000])
        if len(found) >= limit:
            break
    return found


def subquestions_from_lines(text: str) -> list[str]:
    """A person's decomposition: one sub-question a line (list markers allowed)."""
    found = []
    for line in text.splitlines():
        match = _LIST_ITEM.match(line)
        item = (match.group("text") if match else line).strip()
        if item:
            found.append(item)
    return found


def question_normalise(question: str) -> str:
    """Case, spacing, Unicode form and trailing punctuation do not make a new question."""
    text = unicodedata.normalize("NFKC", question).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return text.rstrip(" ?.!")


def question_key(question: str) -> str:
    return hashlib.sha256(question_normalise(question).encode()).hexdigest()


def answer_clean(raw: str, *, limit: int) -> str:
    """A model's answer, trimmed to `limit`. Every backend has already made model output
    storable (llm/backends/base.py's StopScanner applies core.text's one rule)."""
    return raw.strip()[:limit]
