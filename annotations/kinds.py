"""Item kinds: what an item of each queue kind carries, which labels it takes, how it shows.

Payloads and label values are JSON columns, read and written only through the pydantic
models here. Other apps (debate, amplification) describe their items by registering a kind
with `item_kind_register` from their AppConfig.ready() (debate/kinds.py,
amplification/kinds.py), so this app never imports them nor branches on their kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from core.text import text_blank, text_problem
from core.validation import problem_message

# Model-written text can be long, but not unbounded: one field of a payload.
MAX_TEXT_CHARS = 50_000


class QueueKind(StrEnum):
    PAIRWISE = "pairwise"
    LIKERT = "likert"
    DEBATE_JUDGMENT = "debate_judgment"
    TREE_NODE_RATING = "tree_node_rating"
    # A question with two answers, judged with a probability (an experiment's protocol arms).
    QUESTION_JUDGMENT = "question_judgment"


class Payload(BaseModel):
    """Base of every kind's payload (other apps' kinds too): each text field is checked here,
    where items enter: text the database cannot store is refused (core/text.py), and a
    required text field (min_length ≥ 1) that holds only whitespace is refused as empty."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    @field_validator("*", mode="after")
    @classmethod
    def _text_storable(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise ValueError(problem)
            field_info = cls.model_fields[info.field_name or ""]
            required = any(getattr(rule, "min_length", 0) for rule in field_info.metadata)
            if required and text_blank(value):
                raise ValueError("must not be empty or only whitespace")
        return value


class PairwisePayload(Payload):
    prompt: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    response_a: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    response_b: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    system: str = Field(default="", max_length=MAX_TEXT_CHARS)


class LikertPayload(Payload):
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    prompt: str = Field(default="", max_length=MAX_TEXT_CHARS)


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
    the value model that imports and exports carry as a plain scalar. `pair_fields`, on kinds
    whose items compare two responses, names the payload's (system, prompt, A, B) fields
    (system may be "" for none); TRL's preference export needs it. `pair_context`, on such
    kinds, writes what a reader needs beside the pair as plain text (a debate's transcript),
    with A and B swapped when asked `swapped` (a model asked in both orders reads it so).
    `made_by`, on a kind whose queues another part of Arbiter makes with their items (and
    whose keys the queue form cannot give), names that part: the researcher's queue form
    refuses the kind and says so.
    """

    name: str
    title: str
    payload_model: type[Payload]
    value_model: type[LabelValue]
    value_field: str
    template: str
    keys: tuple[LabelKey, ...] = field(default_factory=tuple)
    pair_fields: tuple[str, str, str, str] | None = None
    pair_context: Callable[[dict[str, Any], bool], str] | None = None
    made_by: str = ""

    def payload(self, data: Any) -> Payload:
        """Validate raw JSON into this kind's payload; raises pydantic's ValidationError."""
        return self.payload_model.model_validate(data)

    def value(self, data: Any) -> LabelValue:
        return self.value_model.model_validate(data)

    def value_from_scalar(self, scalar: Any) -> LabelValue:
        return self.value_model.model_validate({self.value_field: scalar})

    def scalar(self, value: dict[str, Any]) -> Any:
        return value[self.value_field]

    def pair(self, payload: dict[str, Any]) -> tuple[str, str, str, str]:
        """(system, prompt, A, B) of a comparison item's payload."""
        assert self.pair_fields is not None, f"{self.name} items compare nothing"
        system, prompt, a, b = self.pair_fields
        return (payload.get(system, "") if system else ""), payload[prompt], payload[a], payload[b]


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


def registered_value_models() -> Any:
    """The union of every registered kind's label model (for an API schema)."""
    models = tuple(dict.fromkeys(kind.value_model for kind in _REGISTRY.values()))
    return Union[models]  # noqa: UP007  (a runtime union of a tuple of types)


for _kind in (
    ItemKind(
        name=QueueKind.PAIRWISE,
        title="Pairwise comparison",
        payload_model=PairwisePayload,
        value_model=ChoiceValue,
        value_field="choice",
        template="annotations/kinds/pairwise.html",
        keys=PAIRWISE_KEYS,
        pair_fields=("system", "prompt", "response_a", "response_b"),
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
):
    item_kind_register(_kind)


def validation_message(error: ValidationError) -> str:
    """pydantic's errors as one readable line: `field: problem; field: problem`."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "value"
        parts.append(f"{where}: {problem_message(problem)}")
    return "; ".join(parts)
