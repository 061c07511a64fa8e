"""The default debater prompts become the small-model ones (debate/prompting.py's
DEFAULT_PROMPTS, frozen here as migrations must be). Only a row that still holds the first
default prompts (0002) is changed: a prompt a researcher edited is theirs and stays."""

import importlib

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

FIRST = importlib.import_module("debate.migrations.0002_fill_protocol_prompts").PROMPTS

TURN = (
    "Write a short speech (three sentences) for the judge, who has not read the story. "
    "Begin with: The answer is {my_answer} because\n"
    "Give facts from the story. Put words copied from the story inside <quote></quote>."
)
SMALL_MODEL = {
    "debate": {
        "debater_system": (
            "You are a debater. Story:\n{passage}\n\n"
            "Question: {question}\n"
            "You argue that the answer is: {my_answer}\n"
            "Your opponent argues: {other_answer}"
        ),
        "debater_turn": TURN,
    },
    "consultancy": {
        "debater_system": (
            "You are a consultant. Story:\n{passage}\n\n"
            "Question: {question}\n"
            "You argue that the answer is: {my_answer}\n"
            "The other possible answer is: {other_answer}"
        ),
        "debater_turn": TURN,
    },
}


def _swap(apps: Apps, old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]) -> None:
    model = apps.get_model("debate", "ProtocolPrompt")
    for protocol, fields in new.items():
        model.objects.filter(protocol=protocol, **old[protocol]).update(**fields)


def fill_small_model_prompts(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _swap(apps, FIRST, SMALL_MODEL)


def restore_first_prompts(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _swap(apps, SMALL_MODEL, FIRST)


class Migration(migrations.Migration):
    dependencies = [("debate", "0006_speech_and_batch_plural_names")]

    operations = [migrations.RunPython(fill_small_model_prompts, restore_first_prompts)]
