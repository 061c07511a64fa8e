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
from core.text import StoredText

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
    config: StoredText = Field(max_length=100)
    model: StoredText = Field(max_length=500)
    # Keys must be storable too: the document says so (additionalProperties false beside the
    # key pattern), as the server's text check does.
    params: dict[StoredText, float | int | StoredText | list[StoredText] | None] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": False}
    )
    system_prompt: StoredText = Field(default="", max_length=MAX_PROMPT_CHARS)
    prompt: StoredText = Field(max_length=200_000)
    raw_output: StoredText = Field(max_length=200_000)
    prompt_tokens: int = Field(ge=0, le=MAX_DB_INT)
    completion_tokens: int = Field(ge=0, le=MAX_DB_INT)
    batch_size: int = Field(ge=1, le=MAX_DB_INT, default=1)
    # Wall time of the batched call this prompt was part of (rows finish together).
    latency_s: float = Field(ge=0, allow_inf_nan=False)
    at: StoredText = Field(max_length=40)
    # A draft stopped part-way because its node was answered (or handed on) first: the
    # output and completion tokens so far, the seconds it ran; its prompt tokens, which the
    # backend reports only at the end, are counted as 0.
    stopped: bool = False


_Hash = Field(pattern="^[0-9a-f]{64}$")


class MemoSource(Strict):
    """Where a memo hit's answer came from (ids on the server that served it; None once
    removed) and the key it was served under (amplification/memo.py)."""

    entry: int | None = Field(ge=1, le=2**63 - 1)
    tree: int | None = Field(ge=1, le=2**63 - 1)
    node: int | None = Field(ge=1, le=2**63 - 1)
    configs_key: str = _Hash
    prompt_version: str = Field(pattern=r"^[0-9]+\.[0-9a-f]{16}$")
    context_key: str = _Hash
    question_key: str = _Hash


class VersionExport(Strict):
    number: int = Field(ge=1, le=MAX_DB_INT)
    question: StoredText = Field(max_length=MAX_QUESTION_CHARS)
    answer: StoredText = _Text
    resolution: Resolution
    reason: StoredText = Field(max_length=200)
    author: Author


class NodeExport(Strict):
    id: int = Field(ge=0, le=MAX_NODES)
    parent: int | None = Field(ge=0, le=MAX_NODES)
    position: int = Field(ge=0, le=MAX_CHILDREN)
    depth: int = Field(ge=0, le=MAX_DEPTH)
    question: StoredText = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    resolution: Resolution
    direct_reason: StoredText = Field(max_length=200)
    answer: StoredText = _Text
    composed_answer: StoredText = _Text
    status: NodeStatus
    error: StoredText = _Text
    decomposed_by: Author
    answered_by: Author
    person: StoredText | None = Field(max_length=150)
    memo_origin: int | None = Field(ge=0, le=MAX_NODES)
    memo: MemoSource | None = None
    memo_invalid: StoredText = Field(default="", max_length=200)
    calls: list[NodeCall] = Field(max_length=50)
    prompt_tokens: int | None = Field(ge=0, le=MAX_DB_INT)
    completion_tokens: int | None = Field(ge=0, le=MAX_DB_INT)
    total_s: float | None = Field(ge=0, allow_inf_nan=False)
    versions: list[VersionExport] = Field(max_length=500)


class TreeExport(Strict):
    format: Literal["arbiter-amplification-tree/1"]
    question: StoredText = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    context: StoredText = _Text
    decompose_config: StoredText = Field(max_length=100)
    answer_config: StoredText = Field(max_length=100)
    compose_config: StoredText = Field(max_length=100)
    decompose_prompt: StoredText = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    answer_prompt: StoredText = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    compose_prompt: StoredText = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    max_depth: int = Field(ge=0, le=MAX_DEPTH)
    max_children: int = Field(ge=1, le=MAX_CHILDREN)
    max_nodes: int = Field(ge=1, le=MAX_NODES)
    mode: Mode
    hold_new_nodes: bool
    status: TreeStatus
    error: StoredText = _Text
    is_demo: bool
    wall_s: float = Field(ge=0, allow_inf_nan=False)
    nodes: list[NodeExport] = Field(min_length=1, max_length=MAX_NODES)


class DistillRow(Strict):
    """TRL's prompt/completion format: one node's question, preceded by the context its
    answer was meant to use (as the tree's prompts show it), and its final answer; `context`
    is that context alone ("" for none)."""

    prompt: StoredText
    completion: StoredText
    context: StoredText
