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
