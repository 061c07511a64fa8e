"""Types shared by every generation backend.

Nothing here imports torch or transformers: the web process imports these types (to read
params, catch errors) and must never pay for, or risk, loading a model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypedDict

from core.text import text_clean

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length"]

ROLES: frozenset[str] = frozenset({"system", "user", "assistant"})


class ChatMessage(TypedDict):
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationParams:
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 128
    seed: int | None = None
    stop: tuple[str, ...] = ()
    timeout_s: float = 120.0
    # OpenAI's semantics on every backend: each generated token's logit is lowered by
    # frequency_penalty × (times it was generated so far) + presence_penalty × (1 if it was).
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    @property
    def penalised(self) -> bool:
        return self.frequency_penalty != 0 or self.presence_penalty != 0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field; call before any model work."""
        # bool is an int subclass; `max_new_tokens=True` is a caller bug, not 1 token.
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, int | float):
            raise ValueError("temperature must be a number")
        if not math.isfinite(self.temperature) or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be between 0 and 2, got {self.temperature}")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, int | float):
            raise ValueError("top_p must be a number")
        if not math.isfinite(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise ValueError("max_new_tokens must be an integer")
        if not 1 <= self.max_new_tokens <= 8192:
            raise ValueError(
                f"max_new_tokens must be between 1 and 8192, got {self.max_new_tokens}"
            )
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0
        ):
            raise ValueError(f"seed must be a non-negative integer or None, got {self.seed!r}")
        if not isinstance(self.stop, tuple) or not all(isinstance(s, str) for s in self.stop):
            raise ValueError("stop must be a tuple of strings")
        if len(self.stop) > 4:
            raise ValueError(f"at most 4 stop sequences are allowed, got {len(self.stop)}")
        if any(s == "" for s in self.stop):
            raise ValueError("stop sequences must not be empty")
        for name in ("frequency_penalty", "presence_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if not math.isfinite(value) or not -2.0 <= value <= 2.0:
                raise ValueError(f"{name} must be between -2 and 2, got {value}")
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, int | float):
            raise ValueError("timeout_s must be a number")
        if not math.isfinite(self.timeout_s) or self.timeout_s <= 0:
            raise ValueError(
                f"timeout_s must be a positive number of seconds, got {self.timeout_s}"
            )


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    # Tokens the model produced, counting an end-of-turn token (it cost a forward pass too).
    completion_tokens: int
    # None when no text was produced (e.g. the first token was end-of-sequence).
    time_to_first_token_s: float | None
    total_s: float


@dataclass(frozen=True, slots=True)
class StreamChunk:
    text: str
    # Only the final chunk carries usage (and a finish reason); consumers detect the end by it.
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    # Tokens generated since the previous chunk (a held-back partial character or stop-string
    # prefix can make one chunk stand for several): what live tokens/s figures count.
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class RowChunk:
    """One chunk of one row of a batched stream; each row ends with a chunk carrying usage."""

    row: int
    chunk: StreamChunk


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    usage: Usage
    finish_reason: FinishReason


ProbabilityMethod = Literal["logprobs", "votes"]

# Replies sampled per chat when a server gives no log-probabilities (the votes fallback).
CHOICE_VOTES = 8


def votes_problem(params: GenerationParams) -> str | None:
    """Why sampled votes under `params` would not be a probability, or None when they are.

    At temperature 0 every vote is the same greedy reply: a 0 or a 1, not a probability.
    """
    if params.temperature == 0:
        return (
            f"sampled votes need a temperature above 0: at 0 all {CHOICE_VOTES} replies are "
            "the same greedy reply, a 0 or a 1 rather than a probability"
        )
    return None


@dataclass(frozen=True, slots=True)
class OptionChoice:
    """How likely a model is to answer with each of a fixed set of options (e.g. "A", "B").

    `probabilities` has one entry per option and sums to 1, or is None when no sampled reply
    named an option: a reply that names none is recorded as such, never as an even split.
    `option_mass` says how much of the model's answer the options cover: with logprobs, the
    next-token probability that fell on them (low = the model wanted to say something
    else); with votes, the share of replies that named one. `replies` keeps the sampled
    replies (untrusted model text) for votes, and is empty for logprobs.
    """

    probabilities: tuple[float, ...] | None
    method: ProbabilityMethod
    option_mass: float | None
    replies: tuple[str, ...] = ()


def options_check(options: Sequence[str]) -> list[str]:
    """The options stripped; at least two, distinct and non-empty, or ValueError."""
    cleaned = [option.strip() for option in options]
    if len(cleaned) < 2:
        raise ValueError("a choice needs at least two options")
    if any(not option for option in cleaned):
        raise ValueError("options must not be empty")
    if len({option.casefold() for option in cleaned}) != len(cleaned):
        raise ValueError(f"options must differ from each other: {cleaned}")
    return cleaned


def option_named(reply: str, options: Sequence[str]) -> int | None:
    """The index of the option a free-text reply names first, as a whole word, or None.

    "B. Because..." names B; "Both are fine" names neither A nor B.
    """
    first: tuple[int, int] | None = None
    for index, option in enumerate(options):
        found = re.search(rf"(?<![\w]){re.escape(option)}(?![\w])", reply)
        if found and (first is None or found.start() < first[0]):
            first = (found.start(), index)
    return None if first is None else first[1]


def choice_from_votes(replies: Sequence[str], options: Sequence[str]) -> OptionChoice:
    """Probabilities as the shares of replies naming each option."""
    counts = [0] * len(options)
    for reply in replies:
        index = option_named(reply, options)
        if index is not None:
            counts[index] += 1
    named = sum(counts)
    return OptionChoice(
        probabilities=tuple(count / named for count in counts) if named else None,
        method="votes",
        option_mass=named / len(replies) if replies else None,
        replies=tuple(replies),
    )


class GenerationError(Exception):
    """A generation failed; `message` is safe to show a researcher, `config_name` says which."""

    def __init__(self, message: str, *, config_name: str) -> None:
        super().__init__(f"[{config_name}] {message}")
        self.message = message
        self.config_name = config_name


class ModelUnavailableError(GenerationError):
    """Missing checkpoint, unknown model id, or an inference server that cannot be reached."""


class GenerationTimeoutError(GenerationError):
    """The generation ran past `GenerationParams.timeout_s`."""


class Backend(Protocol):
    def stream_chat(
        self, messages: Sequence[ChatMessage], *, params: GenerationParams
    ) -> Iterator[StreamChunk]: ...

    def generate_batch(
        self, chats: Sequence[Sequence[ChatMessage]], *, params: GenerationParams
    ) -> list[Completion]: ...

    def stream_batch(
        self, chats: Sequence[Sequence[ChatMessage]], *, params: GenerationParams
    ) -> Iterator[RowChunk]: ...

    def choose_batch(
        self,
        chats: Sequence[Sequence[ChatMessage]],
        options: Sequence[str],
        *,
        params: GenerationParams,
    ) -> list[OptionChoice]: ...


def validate_messages(messages: Iterable[object]) -> list[ChatMessage]:
    """Check an untrusted message list (e.g. from JSON) and return it typed.

    Raises ValueError with the index of the first bad message.
    """
    checked: list[ChatMessage] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ValueError(f"messages[{i}] must be an object with 'role' and 'content'")
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise ValueError(f"messages[{i}].role must be one of system, user, assistant")
        if not isinstance(content, str):
            raise ValueError(f"messages[{i}].content must be a string")
        checked.append(ChatMessage(role=role, content=content))
    if not checked:
        raise ValueError("messages must not be empty")
    return checked


@dataclass(slots=True)
class StopScanner:
    """Cuts generated text before the first stop sequence, holding back possible prefixes.

    Shared by both backends so "text is cut before the stop sequence" means the same thing
    whether tokens come from our own loop or from a remote server's deltas.
    """

    stop: tuple[str, ...]
    stopped: bool = field(init=False, default=False)
    _text: str = field(init=False, default="")
    _emitted: int = field(init=False, default=0)
    _longest: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._longest = max((len(s) for s in self.stop), default=0)

    @property
    def text(self) -> str:
        """Everything emitted so far (the final text once `flush` has run)."""
        return self._text[: self._emitted]

    def feed(self, delta: str) -> str:
        """Add generated text; return the part that is now safe to emit. Text the database
        cannot store (a NUL, a lone surrogate) becomes U+FFFD here, where every backend's
        output passes (core/text.py: model output is replaced, not refused)."""
        if self.stopped or not delta:
            return ""
        delta = text_clean(delta)
        if not self.stop:
            self._text += delta
            self._emitted = len(self._text)
            return delta
        # A match can only involve the new text plus the tail that could start a stop string.
        search_from = max(0, len(self._text) - self._longest + 1)
        self._text += delta
        cut = min(
            (i for i in (self._text.find(s, search_from) for s in self.stop) if i >= 0),
            default=-1,
        )
        if cut >= 0:
            self.stopped = True
            return self._advance(cut)
        return self._advance(len(self._text) - self._held_back())

    def flush(self) -> str:
        """Generation ended without a stop sequence: release the held-back tail."""
        if self.stopped:
            return ""
        return self._advance(len(self._text))

    def _held_back(self) -> int:
        # Longest suffix of the text that is a proper prefix of some stop sequence.
        tail = self._text[-self._longest :]
        for n in range(min(len(tail), self._longest - 1), 0, -1):
            suffix = tail[-n:]
            if any(s.startswith(suffix) for s in self.stop):
                return n
        return 0

    def _advance(self, upto: int) -> str:
        upto = max(upto, self._emitted)
        out = self._text[self._emitted : upto]
        self._emitted = upto
        return out
