"""The tree-node rating item kind: how good is a node's answer, given its children?"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from annotations.kinds import (
    LIKERT_KEYS,
    MAX_TEXT_CHARS,
    ItemKind,
    Payload,
    QueueKind,
    RatingValue,
    item_kind_register,
)


class SubAnswer(Payload):
    question: str = Field(max_length=MAX_TEXT_CHARS)
    answer: str = Field(max_length=MAX_TEXT_CHARS)


class TreeNodePayload(Payload):
    """One node of an amplification tree. `aspect` says what is rated: its answer, given its
    children ("answer"), or whether its sub-questions help answer it ("decomposition")."""

    question: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    answer: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    children: list[SubAnswer] = Field(default_factory=list, max_length=100)
    source_id: str = Field(default="", max_length=200)
    aspect: Literal["answer", "decomposition"] = "answer"


def register() -> None:
    item_kind_register(
        ItemKind(
            name=QueueKind.TREE_NODE_RATING,
            title="Tree-node rating (1–7)",
            payload_model=TreeNodePayload,
            value_model=RatingValue,
            value_field="rating",
            template="amplification/kinds/tree_node.html",
            keys=LIKERT_KEYS,
        )
    )
