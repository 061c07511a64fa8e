"""Item kinds: what an item of each queue kind carries, which labels it takes, how it shows.

Payloads and label values are JSON columns, read and written only through the pydantic
models here. Other apps (debate, amplification) describe their items by registering a kind
with `item_kind_register`, so this app never imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Model-written text can be long, but not unbounded: one field of a payload.
MAX_TEXT_CHARS = 50_000


class QueueKind(StrEnum):
    PAIRWISE = "pairwise"
    LIKERT = "likert"
    DEBATE_JUDGMENT = "debate_judgment"
    TREE_NODE_RATING = "tree_node_rating"


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class PairwisePayload(Payload):
    prompt: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    response_a: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    response_b: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    system: str = Field(default="", max_length=MAX_TEXT_CHARS)


class LikertPayload(Payload):
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    prompt: str = Field(default="", max_length=MAX_TEXT_CHARS)


class DebateTurn(Payload):
    speaker: str = Field(min_length=1, max_length=100)
    text: str = Field(max_length=MAX_TEXT_CHARS)


class DebatePayload(Payload):
    """A finished debate transcript: which debater argued better?"""

    question: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    answer_a: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    answer_b: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    turns: list[DebateTurn] = Field(min_length=1, max_length=200)
    source_id: str = Field(default="", max_length=200)


class SubAnswer(Payload):
    question: str = Field(max_length=MAX_TEXT_CHARS)
    answer: str = Field(max_length=MAX_TEXT_CHARS)


class TreeNodePayload(Payload):
    """One node of an amplification tree: how good is its answer, given its children?"""

    question: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    answer: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    children: list[SubAnswer] = Field(default_factory=list, max_length=100)
    source_id: str = Field(default="", max_length=200)


class LabelValue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Choice = Literal["a", "b", "tie", "both_bad"]


class ChoiceValue(LabelValue):
    """Chatbot Arena's four votes."""

    choice: Choice


class RatingValue(LabelValue):
    rating: int = Field(ge=1, le=7)


@dataclass(frozen=True)
class LabelKey:
    key: str  # the keyboard key, lower case
    caption: str
    value: dict[str, Any]


@dataclass(frozen=True)
class ItemKind:
    """How one queue kind's items are validated, labelled and shown.

    `template` renders the item body (escaped, always); `value_field` names the one field of
    the value model that imports and exports carry as a plain scalar.
    """

    name: str
    title: str
    payload_model: type[Payload]
    value_model: type[LabelValue]
    value_field: str
    template: str
    keys: tuple[LabelKey, ...] = field(default_factory=tuple)

    def payload(self, data: Any) -> Payload:
        """Validate raw JSON into this kind's payload; raises pydantic's ValidationError."""
        return self.payload_model.model_validate(data)

    def value(self, data: Any) -> LabelValue:
        return self.value_model.model_validate(data)

    def value_from_scalar(self, scalar: Any) -> LabelValue:
        return self.value_model.model_validate({self.value_field: scalar})

    def scalar(self, value: dict[str, Any]) -> Any:
        return value[self.value_field]


PAIRWISE_KEYS = (
    LabelKey("1", "A is better", {"choice": "a"}),
    LabelKey("2", "B is better", {"choice": "b"}),
    LabelKey("t", "Tie", {"choice": "tie"}),
    LabelKey("b", "Both bad", {"choice": "both_bad"}),
)
LIKERT_KEYS = tuple(LabelKey(str(n), str(n), {"rating": n}) for n in range(1, 8))

_REGISTRY: dict[str, ItemKind] = {}


def item_kind_register(kind: ItemKind, *, replace: bool = False) -> None:
    """Add a kind (or, with replace=True, take over a built-in one's payload and template).

    Call from an AppConfig.ready(); the queue kinds a queue may have are QueueKind's.
    """
    if kind.name not in QueueKind._value2member_map_:
        raise ValueError(f"{kind.name!r} is not a queue kind ({', '.join(QueueKind)})")
    if kind.name in _REGISTRY and not replace:
        raise ValueError(f"item kind {kind.name!r} is already registered")
    _REGISTRY[kind.name] = kind


def item_kind(name: str) -> ItemKind:
    return _REGISTRY[name]


for _kind in (
    ItemKind(
        name=QueueKind.PAIRWISE,
        title="Pairwise comparison",
        payload_model=PairwisePayload,
        value_model=ChoiceValue,
        value_field="choice",
        template="annotations/kinds/pairwise.html",
        keys=PAIRWISE_KEYS,
    ),
    ItemKind(
        name=QueueKind.LIKERT,
        title="Likert rating (1–7)",
        payload_model=LikertPayload,
        value_model=RatingValue,
        value_field="rating",
        template="annotations/kinds/likert.html",
        keys=LIKERT_KEYS,
    ),
    ItemKind(
        name=QueueKind.DEBATE_JUDGMENT,
        title="Debate judgment",
        payload_model=DebatePayload,
        value_model=ChoiceValue,
        value_field="choice",
        template="annotations/kinds/debate.html",
        keys=PAIRWISE_KEYS,
    ),
    ItemKind(
        name=QueueKind.TREE_NODE_RATING,
        title="Tree-node rating (1–7)",
        payload_model=TreeNodePayload,
        value_model=RatingValue,
        value_field="rating",
        template="annotations/kinds/tree_node.html",
        keys=LIKERT_KEYS,
    ),
):
    item_kind_register(_kind)


def validation_message(error: ValidationError) -> str:
    """pydantic's errors as one readable line: `field: problem; field: problem`."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "value"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)
