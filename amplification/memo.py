"""The memo: a model-made answer reused wherever everything it depends on is the same.

An answer depends on the models that made it (the tree's decompose, answer and compose
configs as they generate: a composed answer comes from all three), on the prompts (the tree's
templates, and how the code fills them: PROMPT_VERSION), on the question (normalised) and on
the context it was answered under. A memo entry is stored under all four, and a node reuses
an entry only when its own tree gives the same four: two trees asking "What are the costs?"
under different passages each ask the model.

A hit keeps its provenance on the node (`memo_source`: the entry, tree and node the answer
came from, and the key it was served under), so an export still says where it came from
after the origin is edited or removed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from amplification.models import MemoEntry, Node, Tree
from amplification.parsing import PROMPT_VERSION, question_key
from amplification.schemas import MemoSource
from llm.models import ModelConfig

# What a config generates with: the settings that change an answer (not its name, timeout or
# API key). Editing any of them makes the config's old answers miss.
CONFIG_SETTINGS = (
    "backend", "model", "base_url", "system_prompt", "temperature", "top_p", "max_new_tokens",
    "frequency_penalty", "presence_penalty", "seed", "stop_sequences",
)  # fmt: skip


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def configs_key(*configs: ModelConfig) -> str:
    """sha256 of the configs' generating settings, in order."""
    settings = [{name: getattr(config, name) for name in CONFIG_SETTINGS} for config in configs]
    return _sha256(json.dumps(settings, sort_keys=True))


def prompt_version(*templates: str) -> str:
    """The code's prompt version and a digest of the tree's templates: "1.3fa9c0e1d2b4a5f6"."""
    return f"{PROMPT_VERSION}.{_sha256(json.dumps(list(templates)))[:16]}"


def context_key(context: str) -> str:
    """sha256 of the context as the prompts use it (stripped; "" for none)."""
    return _sha256(context.strip())


@dataclass(frozen=True)
class TreeKey:
    """The parts of a memo key that a whole tree shares; a node adds its question."""

    config_id: int
    configs_key: str
    prompt_version: str
    context_key: str

    @classmethod
    def of(cls, tree: Tree) -> TreeKey:
        return cls(
            config_id=tree.answer_config_id,
            configs_key=configs_key(tree.decompose_config, tree.answer_config, tree.compose_config),
            prompt_version=prompt_version(
                tree.decompose_prompt, tree.answer_prompt, tree.compose_prompt
            ),
            context_key=context_key(tree.context),
        )

    def lookup(self) -> dict[str, Any]:
        return {
            "config_id": self.config_id, "configs_key": self.configs_key,
            "prompt_version": self.prompt_version, "context_key": self.context_key,
        }  # fmt: skip


def memo_find(key: TreeKey, question: str) -> MemoEntry | None:
    """The entry a node of a tree with this key may reuse for `question`, if any."""
    return (
        MemoEntry.objects.filter(**key.lookup(), question_key=question_key(question))
        .filter(invalid_reason="")
        .first()
    )


def memo_store(key: TreeKey, node: Node) -> MemoEntry:
    """Remember a model-made final answer under the full key of its tree."""
    entry, _ = MemoEntry.objects.update_or_create(
        **key.lookup(),
        question_key=question_key(node.question),
        defaults={
            "question": node.question, "answer": node.final_answer, "tree_id": node.tree_id,
            "node": node, "invalid_reason": "",
        },
    )  # fmt: skip
    return entry


def memo_source(entry: MemoEntry) -> MemoSource:
    return MemoSource(
        entry=entry.pk, tree=entry.tree_id, node=entry.node_id,
        configs_key=entry.configs_key, prompt_version=entry.prompt_version,
        context_key=entry.context_key, question_key=entry.question_key,
    )  # fmt: skip
