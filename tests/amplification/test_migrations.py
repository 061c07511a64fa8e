"""0004_fill_memo_keys: old memo entries get their full key where their origin tells it, the
rest are invalidated, and nodes served across contexts keep their text but are marked."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from amplification.memo import TreeKey
from amplification.models import MemoEntry, Node, Resolution, Tree
from amplification.parsing import question_key
from amplification.schemas import MemoSource

MIGRATION = importlib.import_module("amplification.migrations.0004_fill_memo_keys")
pytestmark = pytest.mark.django_db

SHARED = "What are the costs?"
SEAWALL_ANSWER = "The seawall is located on a nearby island and costs 40 million."


def _tree(config, question, context=""):
    tree = Tree.objects.create(
        question=question, context=context, decompose_config=config, answer_config=config,
        compose_config=config, status="done",
    )  # fmt: skip
    root = Node.objects.create(tree=tree, question=question, resolution=Resolution.DECOMPOSED)
    return tree, root


def _before_0003(config):
    """What the old key (answer config, question) left: the French Revolution tree served the
    seawall tree's answer; one hit in the same tree; one entry and hit whose origin is gone."""
    seawall, seawall_root = _tree(config, "Build the seawall?", "A seawall on an island.")
    origin = Node.objects.create(tree=seawall, parent=seawall_root, depth=1, question=SHARED,
                                 resolution=Resolution.ANSWERED, answer=SEAWALL_ANSWER)  # fmt: skip
    twin = Node.objects.create(tree=seawall, parent=seawall_root, depth=1, position=1,
                               question="what are the COSTS", resolution=Resolution.MEMO,
                               answer=SEAWALL_ANSWER, memo_origin=origin)  # fmt: skip
    french, french_root = _tree(config, "What caused the French Revolution?")
    served = Node.objects.create(tree=french, parent=french_root, depth=1, question=SHARED,
                                 resolution=Resolution.MEMO, answer=SEAWALL_ANSWER,
                                 memo_origin=origin)  # fmt: skip
    orphan = Node.objects.create(
        tree=french,
        parent=french_root,
        depth=1,
        position=1,
        question="Who?",
        resolution=Resolution.MEMO,
        answer="Them.",
    )
    entry = MemoEntry.objects.create(
        config=config,
        question_key=question_key(SHARED),
        question=SHARED,
        answer=SEAWALL_ANSWER,
        node=origin,
    )
    gone = MemoEntry.objects.create(config=config, question_key=question_key("Who?"),
                                    question="Who?", answer="Them.", node=None)  # fmt: skip
    return seawall, origin, twin, french, served, orphan, entry, gone


@pytest.fixture
def prompt_version_1(monkeypatch):
    """The code as it was when 0004 ran: entries it filled carry PROMPT_VERSION 1, which a
    later version no longer serves (tested below)."""
    monkeypatch.setattr("amplification.memo.PROMPT_VERSION", MIGRATION.PROMPT_VERSION)


def test_old_entries_are_keyed_or_invalidated_and_cross_context_hits_marked(
    config, prompt_version_1
):
    seawall, origin, twin, french, served, orphan, entry, gone = _before_0003(config)
    MIGRATION.fill_memo_keys(apps, None)
    for row in (origin, twin, served, orphan, entry, gone):
        row.refresh_from_db()

    key = TreeKey.of(seawall)
    assert (entry.configs_key, entry.prompt_version, entry.context_key, entry.tree_id) == (
        key.configs_key, key.prompt_version, key.context_key, seawall.pk,
    )  # fmt: skip
    assert entry.invalid_reason == ""
    assert "origin was removed" in gone.invalid_reason

    # The French Revolution's node keeps the seawall answer, marked, with where it came from.
    assert served.answer == SEAWALL_ANSWER
    assert served.memo_invalid == "it was answered under another tree's context."
    source = MemoSource.model_validate(served.memo_source)
    assert (source.entry, source.tree, source.node) == (entry.pk, seawall.pk, origin.pk)
    assert source.context_key == key.context_key != TreeKey.of(french).context_key
    # A hit within its own tree still qualifies; one whose origin is gone cannot be checked.
    assert twin.memo_invalid == "" and twin.memo_source == served.memo_source
    assert "origin was removed" in orphan.memo_invalid and orphan.memo_source is None


def test_a_filled_entry_is_served_by_the_new_key_and_the_fill_reverses(config, prompt_version_1):
    from amplification.memo import memo_find

    seawall, origin, twin, french, served, orphan, entry, gone = _before_0003(config)
    MIGRATION.fill_memo_keys(apps, None)
    assert memo_find(TreeKey.of(seawall), "What are the COSTS") == entry
    assert memo_find(TreeKey.of(french), SHARED) is None
    assert memo_find(TreeKey.of(french), "Who?") is None  # invalidated

    # A newer entry for the same question under another context, then back to the old key:
    # one entry per (config, question), the newest, and no marks.
    newer = MemoEntry.objects.create(
        config=config, question_key=question_key(SHARED), question=SHARED, answer="Newer.",
        **{k: v for k, v in TreeKey.of(french).lookup().items() if k != "config_id"},
    )  # fmt: skip
    MIGRATION.empty_memo_keys(apps, None)
    assert set(MemoEntry.objects.values_list("pk", flat=True)) == {newer.pk, gone.pk}
    assert set(MemoEntry.objects.values_list("configs_key", "context_key", "invalid_reason")) == {
        ("", "", "")
    }
    assert not Node.objects.exclude(memo_invalid="").exists()
    assert not Node.objects.filter(memo_source__isnull=False).exists()


def test_entries_filled_under_prompt_version_1_miss_once_the_prompts_change(config, monkeypatch):
    from amplification.memo import memo_find
    from amplification.parsing import PROMPT_VERSION

    assert PROMPT_VERSION > MIGRATION.PROMPT_VERSION
    seawall, *_ = _before_0003(config)
    MIGRATION.fill_memo_keys(apps, None)
    assert memo_find(TreeKey.of(seawall), SHARED) is None
    monkeypatch.setattr("amplification.memo.PROMPT_VERSION", MIGRATION.PROMPT_VERSION)
    assert memo_find(TreeKey.of(seawall), SHARED) is not None
