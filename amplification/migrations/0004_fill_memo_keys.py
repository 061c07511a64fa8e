"""Memo entries get their full key (amplification/memo.py), and nodes served from an entry
that no longer qualifies are marked.

Before 0003 an entry's key was (answer config, normalised question), so a sub-question asked
by two trees got one answer whatever each tree's context. An entry whose node still exists
was answered under that node's tree: its key parts are filled from that tree. An entry whose
node was removed cannot say what it was answered under: it is invalidated (kept, never
served). A memo hit whose origin node's tree differs from its own in context, prompts or
model settings was served an answer that no longer qualifies: its text is kept and it is
marked, with why; a hit whose origin was removed is marked as unverifiable. Every hit with a
surviving origin gets its provenance (`memo_source`).

The key functions are frozen here, as migrations must be: PROMPT_VERSION 1 is what the
prompts were built with when this migration was written.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.models import Q

PROMPT_VERSION = 1
CONFIG_SETTINGS = (
    "backend", "model", "base_url", "system_prompt", "temperature", "top_p", "max_new_tokens",
    "frequency_penalty", "presence_penalty", "seed", "stop_sequences",
)  # fmt: skip
ORIGIN_REMOVED = "its origin was removed, so what it was answered under cannot be checked."


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _question_key(question: str) -> str:
    text = unicodedata.normalize("NFKC", question).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return _sha256(text.rstrip(" ?.!"))


def _tree_key(tree: Any) -> dict[str, Any]:
    configs = (tree.decompose_config, tree.answer_config, tree.compose_config)
    settings = [{name: getattr(config, name) for name in CONFIG_SETTINGS} for config in configs]
    templates = [tree.decompose_prompt, tree.answer_prompt, tree.compose_prompt]
    return {
        "config_id": tree.answer_config_id,
        "configs_key": _sha256(json.dumps(settings, sort_keys=True)),
        "prompt_version": f"{PROMPT_VERSION}.{_sha256(json.dumps(templates))[:16]}",
        "context_key": _sha256(tree.context.strip()),
    }


def _differences(own: dict[str, Any], origin: dict[str, Any]) -> str:
    what = []
    if own["context_key"] != origin["context_key"]:
        what.append("another tree's context")
    if own["prompt_version"] != origin["prompt_version"]:
        what.append("other prompts")
    if own["config_id"] != origin["config_id"] or own["configs_key"] != origin["configs_key"]:
        what.append("other model settings")
    if not what:
        return ""
    listed = what[0] if len(what) == 1 else ", ".join(what[:-1]) + " and " + what[-1]
    return f"it was answered under {listed}."


def fill_memo_keys(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    tree_model = apps.get_model("amplification", "Tree")
    node_model = apps.get_model("amplification", "Node")
    entry_model = apps.get_model("amplification", "MemoEntry")
    trees = tree_model.objects.select_related("decompose_config", "answer_config", "compose_config")
    keys: dict[int, dict[str, Any]] = {}

    def key_of(tree_id: int) -> dict[str, Any]:
        if tree_id not in keys:
            keys[tree_id] = _tree_key(trees.get(pk=tree_id))
        return keys[tree_id]

    entry_of: dict[int, int] = {}  # origin node id -> entry id
    for entry in entry_model.objects.select_related("node").order_by("pk"):
        if entry.node is None:
            entry.invalid_reason = ORIGIN_REMOVED
            entry.save(update_fields=["invalid_reason"])
            continue
        key = key_of(entry.node.tree_id)
        entry.configs_key = key["configs_key"]
        entry.prompt_version = key["prompt_version"]
        entry.context_key = key["context_key"]
        entry.tree_id = entry.node.tree_id
        entry.save(update_fields=["configs_key", "prompt_version", "context_key", "tree"])
        entry_of[entry.node.pk] = entry.pk

    hits = node_model.objects.filter(resolution="memo").select_related("memo_origin")
    for node in hits.order_by("pk"):
        origin = node.memo_origin
        if origin is None:
            node.memo_invalid = ORIGIN_REMOVED
            node.save(update_fields=["memo_invalid"])
            continue
        served = key_of(origin.tree_id)
        node.memo_invalid = _differences(key_of(node.tree_id), served)
        node.memo_source = {
            "entry": entry_of.get(origin.pk), "tree": origin.tree_id, "node": origin.pk,
            "configs_key": served["configs_key"], "prompt_version": served["prompt_version"],
            "context_key": served["context_key"], "question_key": _question_key(origin.question),
        }  # fmt: skip
        node.save(update_fields=["memo_invalid", "memo_source"])


def empty_memo_keys(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Back to one entry per (answer config, question): the newest is kept, as the old
    key's update would have left it."""
    node_model = apps.get_model("amplification", "Node")
    entry_model = apps.get_model("amplification", "MemoEntry")
    marked = Q(memo_source__isnull=False) | ~Q(memo_invalid="")
    node_model.objects.filter(marked).update(memo_source=None, memo_invalid="")
    kept: set[tuple[int, str]] = set()
    for entry in entry_model.objects.order_by("-updated_at", "-pk"):
        old_key = (entry.config_id, entry.question_key)
        if old_key in kept:
            entry.delete()
            continue
        kept.add(old_key)
    entry_model.objects.update(
        configs_key="", prompt_version="", context_key="", tree=None, invalid_reason=""
    )


class Migration(migrations.Migration):
    dependencies = [("amplification", "0003_memo_full_key")]

    operations = [migrations.RunPython(fill_memo_keys, empty_memo_keys)]
