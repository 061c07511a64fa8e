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
    """Reads each comparison prompt and answers the response containing `word` (a model
    with a fixed taste, e.g. for kind answers), 0.9 against 0.1; `flip` answers the other."""

    def __init__(self, words: Sequence[str], *, flip: bool = False) -> None:
        self.words = tuple(words)
        self.flip = flip

    def _first_is_chosen(self, text: str) -> bool:
        first = text.split("Response A:", 1)[1].split("Response B:", 1)[0]
        return any(word in first for word in self.words) != self.flip

    def choose_batch(
        self, chats: Sequence[Any], options: Sequence[str], *, params: Any
    ) -> list[OptionChoice]:
        out = []
        for chat in chats:
            first = self._first_is_chosen(chat[-1]["content"])
            out.append(OptionChoice((0.9, 0.1) if first else (0.1, 0.9), "logprobs", 0.95, ()))
        return out
