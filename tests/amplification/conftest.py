"""A scripted backend for the expansion's unit tests (the worker and browser tests use the
real bundled model), and a helper that builds trees through the real service."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from amplification.expansion import tree_expand
from amplification.models import Mode, Tree
from amplification.services import tree_create
from llm.backends.base import (
    ChatMessage,
    Completion,
    GenerationError,
    GenerationParams,
    RowChunk,
    StreamChunk,
    Usage,
)
from tests.factories import ModelConfigFactory

_QUESTION = re.compile(r"Question: (.+?)(?:\n|$)")


@dataclass
class FakeBackend:
    """Answers like a model would, from a script: `decompositions` maps a question to the
    text a decomposer writes for it (default NONE); answers and compositions name their
    question. Records every prompt, and every batch's size."""

    decompositions: dict[str, str] = field(default_factory=dict)
    # What the decomposer writes when asked a question again (the copy guard's resample).
    decompositions_again: dict[str, str] = field(default_factory=dict)
    prompts: list[tuple[str, str]] = field(default_factory=list)  # (step, question)
    batches: list[int] = field(default_factory=list)
    fail_on: str = ""
    # Streaming: one character a step, every row of the batch in each step, this long apart.
    step_s: float = 0.0
    streamed: int = 0  # characters streamed so far
    cut_short: bool = False  # the last stream was closed before its end

    def stream_chat(self, messages: Any, *, params: GenerationParams) -> Any:
        raise NotImplementedError

    def stream_batch(
        self, chats: Sequence[Sequence[ChatMessage]], *, params: GenerationParams
    ) -> Iterator[RowChunk]:
        """What generate_batch would write, a character a step, as a model streams it."""
        completions = self.generate_batch(chats, params=params)
        self.cut_short = True
        for step in range(max(len(c.text) for c in completions) + 1):
            time.sleep(self.step_s)
            for row, completion in enumerate(completions):
                if step < len(completion.text):
                    self.streamed += 1
                    yield RowChunk(row, StreamChunk(completion.text[step], tokens=1))
                elif step == len(completion.text):
                    yield RowChunk(row, StreamChunk("", completion.usage, "stop"))
        self.cut_short = False

    def generate_batch(
        self, chats: Sequence[Sequence[ChatMessage]], *, params: GenerationParams
    ) -> list[Completion]:
        self.batches.append(len(chats))
        out = []
        for chat in chats:
            prompt = chat[-1]["content"]
            question = _QUESTION.findall(prompt)[-1]
            if self.fail_on and self.fail_on in question:
                raise GenerationError("the scripted model failed", config_name="fake")
            if prompt.rstrip().endswith("Sub-questions:"):
                step, text = "decompose", self.decompositions.get(question, "NONE")
                if self.count("decompose", question) and question in self.decompositions_again:
                    text = self.decompositions_again[question]
            elif "Facts found so far" in prompt or "Answers to its sub-questions" in prompt:
                step, text = "compose", f"composed: {question}"
            else:
                step, text = "answer", f"answer to {question}"
            self.prompts.append((step, question))
            out.append(Completion(text, Usage(10, 5, None, 0.01), "stop"))
        return out

    def count(self, step: str | None = None, question: str | None = None) -> int:
        return sum(
            1 for s, q in self.prompts
            if (step is None or s == step) and (question is None or q == question)
        )  # fmt: skip

    def reset(self) -> None:
        self.prompts.clear()
        self.batches.clear()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    backend = FakeBackend()
    monkeypatch.setattr("amplification.expansion.backend_for", lambda config: backend)
    return backend


@pytest.fixture
def config(db: None) -> Any:
    return ModelConfigFactory(name="fake config")


@pytest.fixture
def make_tree(researcher: Any, config: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Trees made through the real service and expanded in this process. In tests that commit
    (transactional), nothing is sent to the broker: a real worker in the same session would
    otherwise claim the run first, with the real model."""
    monkeypatch.setattr("amplification.tasks.tree_expand_task.delay", lambda tree_id: None)
    monkeypatch.setattr("amplification.tasks.node_draft_task.delay", lambda *ids: None)

    def make(question: str = "Root?", *, expand: bool = True, **fields: Any) -> Tree:
        values: dict[str, Any] = {"max_depth": 2, "max_children": 3, "max_nodes": 13,
                                  "mode": Mode.MACHINE, "decompose_config": config,
                                  "answer_config": config, "compose_config": config,
                                  **fields}  # fmt: skip
        tree = Tree(question=question, **values)
        tree = tree_create(tree=tree, created_by=researcher)
        if expand:
            tree_expand(tree_id=tree.pk)
            tree.refresh_from_db()
        return tree

    return make


def three_by_three() -> dict[str, str]:
    """Root → A, B, C; each → three leaves: a 1 + 3 + 9 tree."""
    script = {"Root?": "1. A?\n2. B?\n3. C?"}
    for parent in "ABC":
        script[f"{parent}?"] = "\n".join(f"- {parent}{n}?" for n in range(1, 4))
    return script
