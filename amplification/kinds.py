"""The tree-node rating item kind: how good is a node's answer, given the tree's context and
its children's answers (a leaf has none: it is judged against the context alone)?"""

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
    children ("answer"), or whether its sub-questions help answer it ("decomposition").
    `context` is the tree's context, the evidence the answer was meant to use."""

    question: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    context: str = Field(default="", max_length=MAX_TEXT_CHARS)
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
