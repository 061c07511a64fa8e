"""Text in and out of the model: prompts from templates, decompositions from what a small
model actually writes (numbered lists, bullets, stray prose), normalised memo keys."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# The version of how prompts are built from a tree's templates (prompt_render, context_block,
# subanswers_block, amplification.prompts, llm.generation.chat_messages): bump it when any of
# them changes what a model is shown, so the memo stops reusing answers given to the old
# prompts. 2: worked examples from a bank ({examples}); short numbered sub-answers.
PROMPT_VERSION = 2

PLACEHOLDERS = ("{question}", "{context}", "{max_children}", "{subanswers}", "{examples}")
REQUIRED = {
    "decompose_prompt": ("{question}",),
    "answer_prompt": ("{question}",),
    "compose_prompt": ("{question}", "{subanswers}"),
}

LIST_ITEM = re.compile(
    r"^\s*(?:(?:sub-?question\s*)?\(?\d{1,2}[.):]\)?|[-*•·–]|\(?[a-hA-H][.)])\s+(?P<text>.+)$",
    re.IGNORECASE,
)
# "1. Who? 2. Where?" on one line: split before each number that follows a question mark.
_INLINE_SPLIT = re.compile(r"(?<=\?)\s+(?=\(?\d{1,2}[.)]\s)")
_NONE = re.compile(r"^\W*(none|no sub-?questions?|n/a)\W*$", re.IGNORECASE)
# The model going on to invent the next worked example: what follows is not this question's.
_NEXT_EXAMPLE = re.compile(r"^\s*(?:question|sub-?questions)\s*:", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:sub-?question|question|q)\s*\d*\s*[:.-]\s*", re.IGNORECASE)
MIN_QUESTION_CHARS = 2
# Markdown a model puts around a list item: **1. …**, ## 1. …
_EMPHASIS = re.compile(r"^\s*(?:\*\*|__|#+\s+)")


def newlines_normalise(text: str) -> str:
    """Every line ending as "\n". A browser submits a textarea's lines ending in "\r\n":
    a template edited in the tree form (or merely submitted with it) would otherwise show
    the model other tokens than the same template typed here, and the bundled 135M model
    then writes other text (it copied the worked examples under CRLF where it decomposed
    the question under LF)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def prompt_render(template: str, **values: str) -> str:
    """Fill the known placeholders only: a brace a researcher typed stays as written. Line
    endings are normalised, so a template stored with "\r\n" renders as it would with "\n"."""
    text = newlines_normalise(template)
    for name, value in values.items():
        text = text.replace("{" + name + "}", newlines_normalise(value))
    return text


def context_block(context: str) -> str:
    return f"Context:\n{context.strip()}\n\n" if context.strip() else ""


# A sub-answer as the compose prompt shows it: its first sentence or so, no longer.
SUBANSWER_CHARS = 200


def subanswers_block(pairs: list[tuple[str, str]]) -> str:
    """The children's answers, numbered, one short line each: a small model attends to what
    sits right before its answer slot, and a long block buries it."""
    return "\n".join(
        f"{number}. {_short(answer)}" for number, (_, answer) in enumerate(pairs, start=1)
    )


def _short(answer: str) -> str:
    text = re.sub(r"\s+", " ", answer).strip()
    if len(text) <= SUBANSWER_CHARS:
        return text
    cut = text[:SUBANSWER_CHARS]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end >= 40 else cut.rstrip() + "…"


def decomposition_parse(raw: str, *, parent_question: str, limit: int) -> list[str]:
    """The sub-questions in a model's (or a person's) decomposition, at most `limit`.

    List items are preferred (numbered, lettered, bulleted); failing those, lines that end
    in a question mark. Labels ("Sub-question 1:"), duplicates (words alike, whatever the
    case, spacing and punctuation), fragments and a copy of the parent question are dropped,
    and so is everything after the model starts a new "Question:" of its own once it has
    written some items. NONE or nothing usable gives [].
    """
    if limit <= 0:
        return []
    lines: list[str] = []
    for line in raw.replace("\r", "\n").split("\n"):
        line = _EMPHASIS.sub("", line)
        if _NEXT_EXAMPLE.match(line) and any(LIST_ITEM.match(seen) for seen in lines):
            break
        lines.extend(part for part in _INLINE_SPLIT.split(line) if part.strip())
    if any(_NONE.match(line) for line in lines[:2]) and not any(
        LIST_ITEM.match(line) for line in lines
    ):
        return []
    items = [m.group("text") for line in lines if (m := LIST_ITEM.match(line))]
    if not items:
        items = [line for line in lines if line.strip().endswith("?")]
    found: list[str] = []
    seen = {words_key(parent_question)}
    for item in items:
        text = _LABEL.sub("", item).strip().strip('"*_ ').strip()
        if len(text) < MIN_QUESTION_CHARS or not any(c.isalpha() for c in text):
            continue
        key = words_key(text)
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
        match = LIST_ITEM.match(line)
        item = (match.group("text") if match else line).strip()
        if item:
            found.append(item)
    return found


def question_normalise(question: str) -> str:
    """Case, spacing, Unicode form and trailing punctuation do not make a new question."""
    text = unicodedata.normalize("NFKC", question).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return text.rstrip(" ?.!")


_WORD = re.compile(r"[^\W_]+")


def words_key(text: str) -> str:
    """A text's words alone (case, accents, punctuation and spacing aside): what makes two
    sub-questions the same line for the parser and the copy guard."""
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


def question_key(question: str) -> str:
    return hashlib.sha256(question_normalise(question).encode()).hexdigest()


def answer_clean(raw: str, *, limit: int) -> str:
    """A model's answer, trimmed to `limit`. Every backend has already made model output
    storable (llm/backends/base.py's StopScanner applies core.text's one rule)."""
    return raw.strip()[:limit]
