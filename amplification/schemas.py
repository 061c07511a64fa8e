"""The shapes of amplification's JSON: one model call on a node, and a whole tree's export.

JSON columns and files are read and written only through these models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from amplification.models import (
    MAX_ANSWER_CHARS,
    MAX_CHILDREN,
    MAX_DEPTH,
    MAX_NODES,
    MAX_QUESTION_CHARS,
    Author,
    Mode,
    NodeStatus,
    Resolution,
    TreeStatus,
)

EXPORT_FORMAT = "arbiter-amplification-tree/1"
MAX_PROMPT_CHARS = 20_000
MAX_DB_INT = 2**31 - 1  # PositiveIntegerField's ceiling on every database
Step = Literal["decompose", "answer", "compose", "draft-answer", "draft-decompose"]

_Text = Field(max_length=MAX_ANSWER_CHARS)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeCall(Strict):
    """One model call made for a node: exactly what went in and came out, and its cost."""

    step: Step
    config: str = Field(max_length=100)
    model: str = Field(max_length=500)
    params: dict[str, float | int | str | list[str] | None] = Field(default_factory=dict)
    system_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    prompt: str = Field(max_length=200_000)
    raw_output: str = Field(max_length=200_000)
    prompt_tokens: int = Field(ge=0, le=MAX_DB_INT)
    completion_tokens: int = Field(ge=0, le=MAX_DB_INT)
    batch_size: int = Field(ge=1, le=MAX_DB_INT, default=1)
    # Wall time of the batched call this prompt was part of (rows finish together).
    latency_s: float = Field(ge=0, allow_inf_nan=False)
    at: str = Field(max_length=40)


class VersionExport(Strict):
    number: int = Field(ge=1, le=MAX_DB_INT)
    question: str = Field(max_length=MAX_QUESTION_CHARS)
    answer: str = _Text
    resolution: Resolution
    reason: str = Field(max_length=200)
    author: Author


class NodeExport(Strict):
    id: int = Field(ge=0, le=MAX_NODES)
    parent: int | None = Field(ge=0, le=MAX_NODES)
    position: int = Field(ge=0, le=MAX_CHILDREN)
    depth: int = Field(ge=0, le=MAX_DEPTH)
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    resolution: Resolution
    direct_reason: str = Field(max_length=200)
    answer: str = _Text
    composed_answer: str = _Text
    status: NodeStatus
    error: str = _Text
    decomposed_by: Author
    answered_by: Author
    person: str | None = Field(max_length=150)
    memo_origin: int | None = Field(ge=0, le=MAX_NODES)
    calls: list[NodeCall] = Field(max_length=50)
    prompt_tokens: int | None = Field(ge=0, le=MAX_DB_INT)
    completion_tokens: int | None = Field(ge=0, le=MAX_DB_INT)
    total_s: float | None = Field(ge=0, allow_inf_nan=False)
    versions: list[VersionExport] = Field(max_length=500)


class TreeExport(Strict):
    format: Literal["arbiter-amplification-tree/1"]
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    context: str = _Text
    decompose_config: str = Field(max_length=100)
    answer_config: str = Field(max_length=100)
    compose_config: str = Field(max_length=100)
    decompose_prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    answer_prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    compose_prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    max_depth: int = Field(ge=0, le=MAX_DEPTH)
    max_children: int = Field(ge=1, le=MAX_CHILDREN)
    max_nodes: int = Field(ge=1, le=MAX_NODES)
    mode: Mode
    hold_new_nodes: bool
    status: TreeStatus
    error: str = _Text
    is_demo: bool
    wall_s: float = Field(ge=0, allow_inf_nan=False)
    nodes: list[NodeExport] = Field(min_length=1, max_length=MAX_NODES)


class DistillRow(Strict):
    """TRL's prompt/completion format: one node's question and its final answer."""

    prompt: str
    completion: str
