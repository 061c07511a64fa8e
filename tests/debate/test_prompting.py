"""Debater prompts: the small-model defaults, and the migration that installs them only where
a researcher has not edited the prompts."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from debate.models import ProtocolPrompt
from debate.prompting import DEFAULT_PROMPTS, TranscriptEntry, debater_messages

MIGRATION = importlib.import_module("debate.migrations.0007_fill_small_model_prompts")
FIRST = MIGRATION.FIRST

VALUES: dict[str, object] = {
    "question": "Who found the key?", "answer_a": "The dog", "answer_b": "The daughter",
    "my_answer": "The dog", "other_answer": "The daughter", "passage": "The dog found it.",
    "speech_char_limit": 750, "quote_char_limit": 250, "round": 2, "max_rounds": 3,
}  # fmt: skip


def _rows() -> dict[str, dict[str, str]]:
    return {
        row.protocol: {"debater_system": row.debater_system, "debater_turn": row.debater_turn}
        for row in ProtocolPrompt.objects.all()
    }


def test_a_fresh_install_has_the_small_model_prompts_of_the_code(db):
    assert _rows() == DEFAULT_PROMPTS
    # The migration's frozen copy is the code's: a new default needs a new migration.
    assert MIGRATION.SMALL_MODEL == DEFAULT_PROMPTS


def test_the_migration_changes_only_prompts_still_at_the_first_default(db):
    ProtocolPrompt.objects.filter(protocol="debate").update(**FIRST["debate"])
    edited = {"debater_system": "My own system prompt {passage}", "debater_turn": "Go."}
    ProtocolPrompt.objects.filter(protocol="consultancy").update(**edited)

    MIGRATION.fill_small_model_prompts(apps, None)
    assert _rows() == {"debate": DEFAULT_PROMPTS["debate"], "consultancy": edited}

    MIGRATION.restore_first_prompts(apps, None)
    assert _rows() == {"debate": FIRST["debate"], "consultancy": edited}


@pytest.mark.parametrize("protocol", ["debate", "consultancy"])
def test_the_default_prompts_restate_the_answer_to_argue(protocol):
    prompts = DEFAULT_PROMPTS[protocol]
    transcript = [TranscriptEntry(1, "Judge", "Why the dog?")]
    system, user = debater_messages(
        system_template=prompts["debater_system"], turn_template=prompts["debater_turn"],
        values=VALUES, transcript=transcript,
    )  # fmt: skip
    assert "The dog found it." in system["content"] and "Who found the key?" in system["content"]
    assert "You argue that the answer is: The dog" in system["content"]
    assert "Why the dog?" in user["content"]
    assert user["content"].rstrip().endswith("inside <quote></quote>.")
    assert "Begin with: The answer is The dog because" in user["content"]
    assert "{" not in system["content"] + user["content"]  # every placeholder filled
