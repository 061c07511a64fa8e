"""A fake backend for unit tests of labelling runs (the real one has its own tests: the
worker test runs the bundled model)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm.backends.base import OptionChoice


class AlwaysFirst:
    """Answers the first option ("A", or "1") with certainty, whatever it is asked; records
    the chats it was given."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.chats: list[Any] = []

    def choose_batch(
        self, chats: Sequence[Any], options: Sequence[str], *, params: Any
    ) -> list[OptionChoice]:
        self.calls.append(len(chats))
        self.chats.extend(chats)
        first = (1.0,) + (0.0,) * (len(options) - 1)
        return [OptionChoice(first, "logprobs", 0.9, ()) for _ in chats]


class NamesNothing:
    """Sampled votes that never name an option."""

    def choose_batch(
        self, chats: Sequence[Any], options: Sequence[str], *, params: Any
    ) -> list[OptionChoice]:
        return [OptionChoice(None, "votes", 0.0, ("<script>no</script>",)) for _ in chats]


class PicksByWord:
    """Reads each comparison prompt and answers the response containing one of `words` (a
    model with a fixed taste), 0.9 against 0.1; `flip` answers the one without. When neither
    response holds a word it answers "A", whichever stands first (position bias)."""

    def __init__(self, words: Sequence[str], *, flip: bool = False) -> None:
        self.words = tuple(words)
        self.flip = flip

    def _picks_first(self, text: str) -> bool:
        first, second = text.split("Response A:", 1)[1].split("Response B:", 1)
        first_has = any(word in first for word in self.words)
        second_has = any(word in second for word in self.words)
        if first_has == second_has:
            return True
        return first_has != self.flip

    def choose_batch(
        self, chats: Sequence[Any], options: Sequence[str], *, params: Any
    ) -> list[OptionChoice]:
        out = []
        for chat in chats:
            first = self._picks_first(chat[-1]["content"])
            out.append(OptionChoice((0.9, 0.1) if first else (0.1, 0.9), "logprobs", 0.95, ()))
        return out
