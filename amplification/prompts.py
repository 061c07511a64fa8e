"""What a tree's models are shown, built in one place: the expansion, the drafts, the
distillation set and the focus bench all call these functions, so a distillation row's
prompt is the prompt the answerer saw.

Decompose prompts carry worked examples from a small bank across several domains. The
bundled 135M model copies what it is shown, so the examples a question gets are the ones
least like it (fewest shared content words, one per domain, bank order breaking ties): never
its own, and easy to tell apart from a real sub-question when the model copies one anyway.
The copy guard (`decomposition_check`) then drops a sub-question that repeats an example's,
its parent or a sibling.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from amplification.models import Tree
from amplification.parsing import (
    LIST_ITEM,
    context_block,
    decomposition_parse,
    prompt_render,
    subanswers_block,
    words_key,
)

# A resample asks again with the next examples in the bank's order for the question, so a
# seeded model does not write the same copy twice.
EXAMPLES_SHOWN = 2
# Fewer kept sub-questions than this: the decomposition is not worth a subtree.
MIN_SUBQUESTIONS = 2


@dataclass(frozen=True)
class Example:
    domain: str
    question: str
    subquestions: tuple[str, ...]


# Each sub-question names the thing its question is about: the model learns to keep the
# question's own words, which is what makes a sub-question belong to its parent.
EXAMPLE_BANK: tuple[Example, ...] = (
    Example("engineering", "Why do steel bridges have expansion joints?", (
        "What happens to a steel bridge on a hot day?",
        "What would a steel bridge do without expansion joints?",
    )),
    Example("history", "Why did the Roman Empire split into two halves?", (
        "How large was the Roman Empire before it split?",
        "Who ruled each half of the Roman Empire?",
    )),
    Example("medicine", "How does a vaccine protect a person from a disease?", (
        "What does a vaccine contain?",
        "How does the body's immune system respond to a vaccine?",
    )),
    Example("economics", "Why do prices rise when a country prints more money?", (
        "What happens to the value of money when more of it is printed?",
        "How do shops set prices when people have more money?",
    )),
    Example("astronomy", "Why does the Moon show phases?", (
        "Which half of the Moon does sunlight fall on?",
        "How does the Moon move around the Earth each month?",
    )),
    Example("cooking", "Why does bread dough rise?", (
        "What does yeast do in bread dough?",
        "Which gas fills the bubbles in bread dough?",
    )),
    Example("computing", "How does a password manager keep passwords safe?", (
        "Where does a password manager store the passwords?",
        "How does a password manager encrypt the passwords?",
    )),
    Example("law", "How does a bill become a law in a parliament?", (
        "Who can propose a bill in a parliament?",
        "How many votes does a bill need to pass?",
    )),
    Example("sport", "Why does a spinning football curve in the air?", (
        "How does the spin change the air around a football?",
        "Which way does the air push a spinning football?",
    )),
)  # fmt: skip

_WORD = re.compile(r"[^\W\d_]+")
# Words too common to say what a question is about ("What is the …?").
_STOPWORDS_TEXT = """
a about above after again against all also an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers him his how i if in into is it its itself just me more
most my no nor not now of off on once only or other our out over own same she should so some
such than that the their theirs them then there these they this those through to too under
until up very was we were what when where which while who whom why will with would you your
happen happens happened make makes made get gets many much one two way ways thing things kind
use used need needs part parts
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def content_words(text: str) -> set[str]:
    """The words that say what a text is about: letters only, three or more of them, not a
    stop word, compared case- and accent-insensitively, a final plural "s" dropped."""
    words = set()
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).casefold()):
        if len(word) >= 3 and word not in STOPWORDS:
            words.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return words


def examples_chosen(
    question: str, *, attempt: int = 0, count: int = EXAMPLES_SHOWN
) -> list[Example]:
    """The bank's examples for a question: fewest content words shared with it first (bank
    order breaks ties), one per domain, never one asking the question itself. Attempt k
    (a resample) takes the next `count` in that order, wrapping round the bank."""
    asked = content_words(question)
    own = words_key(question)
    ranked = sorted(
        (example for example in EXAMPLE_BANK if words_key(example.question) != own),
        key=lambda example: len(
            asked & content_words(" ".join((example.question, *example.subquestions)))
        ),
    )
    if not ranked:
        return []
    start = (attempt * count) % len(ranked)
    rotated = ranked[start:] + ranked[:start]
    chosen: list[Example] = []
    for example in rotated:
        if all(example.domain != seen.domain for seen in chosen):
            chosen.append(example)
        if len(chosen) == count:
            break
    return chosen


def examples_block(examples: list[Example]) -> str:
    return "".join(
        f"Question: {example.question}\nSub-questions:\n"
        + "".join(f"{n}. {sub}\n" for n, sub in enumerate(example.subquestions, start=1))
        + "\n"
        for example in examples
    )


@dataclass(frozen=True)
class DecomposePrompt:
    text: str
    # Every sub-question shown to the node as an example: the bank's chosen ones (this
    # attempt's and, for a resample, the first's) and any list item a researcher wrote into
    # the template itself. A copy of one is dropped.
    example_subquestions: tuple[str, ...]


def decompose_prompt(tree: Tree, question: str, *, attempt: int = 0) -> DecomposePrompt:
    """The decompose prompt for one node of a tree (`attempt` 1 is the resample)."""
    examples = examples_chosen(question, attempt=attempt)
    text = prompt_render(
        tree.decompose_prompt, question=question, context=context_block(tree.context),
        max_children=str(tree.max_children), examples=examples_block(examples),
    )  # fmt: skip
    written = [
        match.group("text") for line in tree.decompose_prompt.splitlines()
        if (match := LIST_ITEM.match(line))
    ]  # fmt: skip
    # A resample is guarded against the first attempt's examples too: its output may still
    # be what the first prompt taught.
    shown = [
        sub for earlier in range(attempt + 1)
        for example in examples_chosen(question, attempt=earlier) for sub in example.subquestions
    ]  # fmt: skip
    return DecomposePrompt(text, tuple(shown + written))


def answer_prompt(tree: Tree, question: str) -> str:
    """What an answerer is shown for a question of this tree (context included): a model
    answering directly, and every distillation row's prompt."""
    return prompt_render(tree.answer_prompt, question=question, context=context_block(tree.context))


def compose_prompt(tree: Tree, question: str, pairs: list[tuple[str, str]]) -> str:
    return prompt_render(
        tree.compose_prompt, question=question, context=context_block(tree.context),
        subanswers=subanswers_block(pairs),
    )  # fmt: skip


# --- the copy guard ---------------------------------------------------------------------
@dataclass(frozen=True)
class Decomposition:
    kept: list[str]
    dropped: list[str] = field(default_factory=list)
    # How many make a decomposition worth keeping: MIN_SUBQUESTIONS, or the room there is.
    needed: int = MIN_SUBQUESTIONS

    @property
    def enough(self) -> bool:
        return len(self.kept) >= self.needed

    @property
    def needs_resample(self) -> bool:
        """Nothing usable, or copies dropped and too few left. A lone sub-question the guard
        had no quarrel with stands: one may be what was meant."""
        return not self.kept or (bool(self.dropped) and not self.enough)


def decomposition_check(
    raw: str, *, parent_question: str, examples: tuple[str, ...], limit: int,
    siblings: tuple[str, ...] = (),
) -> Decomposition:  # fmt: skip
    """A model's decomposition through the copy guard: the parsed sub-questions, less any
    that repeats (normalised: words only) an example's sub-question, the parent question, an
    existing sibling or an earlier one of its own; at most `limit` kept."""
    if limit <= 0:
        return Decomposition([], needed=0)
    taken = {words_key(parent_question), *(words_key(s) for s in siblings)}
    copies = {words_key(example) for example in examples}
    kept: list[str] = []
    dropped: list[str] = []
    # Parse without the limit: a dropped copy must not use up a kept one's place.
    for question in decomposition_parse(raw, parent_question=parent_question, limit=limit * 4):
        key = words_key(question)
        if key in copies or key in taken or not key:
            dropped.append(question)
            continue
        taken.add(key)
        if len(kept) < limit:
            kept.append(question)
    return Decomposition(kept, dropped, needed=min(MIN_SUBQUESTIONS, limit))


def copy_reason(first: Decomposition, second: Decomposition) -> str:
    """Why a node was answered directly after its resample (shown on the node)."""
    dropped = len(first.dropped) + len(second.dropped)
    if not dropped:
        return "no sub-questions could be parsed, twice"
    return (
        f"too few new sub-questions after one resample ({len(second.kept)} kept; "
        f"{dropped} dropped as copies of an example, the question or a sibling)"
    )[:200]
