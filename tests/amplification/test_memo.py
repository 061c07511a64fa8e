"""The memo reuses an answer across trees only when everything it depends on matches: the
model configs as they generate, the prompts, the normalised question and the context."""

import pytest

from amplification.memo import TreeKey
from amplification.models import MemoEntry, Resolution, TreeStatus
from amplification.parsing import PROMPT_VERSION
from amplification.schemas import MemoSource
from amplification.selectors import tree_export
from tests.factories import ModelConfigFactory

pytestmark = pytest.mark.django_db

SHARED = "What are the costs?"
SEAWALL = "A seawall is planned on a nearby island; it costs 40 million euros."


def _script(fake, *roots):
    for root in roots:
        fake.decompositions[root] = f"1. {SHARED}\n2. {root} detail?"


def test_trees_with_different_contexts_each_ask_the_model(fake, make_tree):
    _script(fake, "Should the town build the seawall?", "What caused the French Revolution?")
    seawall = make_tree("Should the town build the seawall?", context=SEAWALL, max_depth=1)
    french = make_tree("What caused the French Revolution?", context="", max_depth=1)
    assert fake.count("answer", SHARED) == 2
    hit = french.nodes.get(question=SHARED)
    assert hit.resolution == Resolution.ANSWERED and hit.memo_origin is None
    assert seawall.nodes.get(question=SHARED).resolution == Resolution.ANSWERED
    # Each answer sits under its own key; neither tree was served the other's.
    assert MemoEntry.objects.filter(question=SHARED).count() == 2


def test_trees_with_the_same_context_ask_the_model_once(fake, make_tree):
    _script(fake, "Should the town build the seawall?", "Who pays for the seawall?")
    first = make_tree("Should the town build the seawall?", context=SEAWALL, max_depth=1)
    # The same passage, spaced differently at its ends, and the question cased differently.
    fake.decompositions["Who pays for the seawall?"] = "1. what are the COSTS\n2. Who pays?"
    second = make_tree("Who pays for the seawall?", context=f"\n{SEAWALL}  ", max_depth=1)
    assert fake.count("answer", SHARED) + fake.count("answer", "what are the COSTS") == 1
    hit = second.nodes.get(question="what are the COSTS")
    origin = first.nodes.get(question=SHARED)
    assert hit.resolution == Resolution.MEMO and hit.memo_origin == origin
    assert hit.answer == origin.answer
    assert second.status == TreeStatus.DONE


COMPOSE = "Question: {question}\n\nAnswers to its sub-questions:\n{subanswers}\n\nSo?"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            {"answer_prompt": "{context}Answer briefly.\n\nQuestion: {question}"}, id="prompt"
        ),
        pytest.param({"compose_prompt": COMPOSE}, id="compose prompt"),
        pytest.param({"config_temperature": 0.1}, id="config setting"),
        pytest.param({"other_config": True}, id="another config"),
    ],
)
def test_other_prompts_or_model_settings_miss_the_memo(fake, make_tree, config, change):
    _script(fake, "First?", "Second?")
    make_tree("First?", max_depth=1)
    fields = {k: v for k, v in change.items() if not k.startswith(("config_", "other_"))}
    if "config_temperature" in change:
        config.temperature = change["config_temperature"]
        config.save()
    if "other_config" in change:
        other = ModelConfigFactory(name="another config", model=config.model)
        fields |= {"decompose_config": other, "answer_config": other, "compose_config": other}
    make_tree("Second?", max_depth=1, **fields)
    assert fake.count("answer", SHARED) == 2


def test_a_hit_keeps_its_provenance_and_the_export_carries_it(fake, make_tree, researcher):
    _script(fake, "First?", "Second?")
    first = make_tree("First?", context=SEAWALL, max_depth=1)
    second = make_tree("Second?", context=SEAWALL, max_depth=1)
    hit = second.nodes.get(question=SHARED)
    origin = first.nodes.get(question=SHARED)
    entry = MemoEntry.objects.get(question=SHARED)
    key = TreeKey.of(second)
    source = MemoSource.model_validate(hit.memo_source)
    assert (source.entry, source.tree, source.node) == (entry.pk, first.pk, origin.pk)
    assert (source.configs_key, source.prompt_version, source.context_key) == (
        key.configs_key, key.prompt_version, key.context_key,
    )  # fmt: skip
    assert source.prompt_version.startswith(f"{PROMPT_VERSION}.")
    # Removing the origin leaves the provenance in place.
    from amplification.services import node_remove

    node_remove(tree_id=first.pk, node_id=origin.pk, user=researcher)
    hit.refresh_from_db()
    assert hit.memo_origin is None and hit.memo_source == source.model_dump(mode="json")
    exported = tree_export(second).nodes
    [node] = [n for n in exported if n.question == SHARED]
    assert node.memo == source and node.memo_invalid == ""
