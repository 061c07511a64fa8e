"""Quotes of imported debates are verified again by Arbiter's check (debate.quotes), as every
import now does: before, an import stored the file's own `verified` flags. Only debates that
came from a file (a room name) are read; a live debate's flags were always Arbiter's. Reversing
leaves the checked flags in place (the file's flags are not kept anywhere to restore)."""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from debate.quotes import Quote, quotes_recheck


def recheck(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Debate = apps.get_model("debate", "Debate")
    Speech = apps.get_model("debate", "Speech")
    imported = Debate.objects.filter(room_name__isnull=False, has_transcript=True)
    for debate in imported.only("pk", "passage", "source", "quote_char_limit").iterator():
        limit = debate.quote_char_limit if debate.source == "arbiter" else None
        changed = []
        for speech in Speech.objects.filter(debate_id=debate.pk).only("pk", "text", "quotes"):
            given = [Quote(**{**quote, "span": tuple(quote["span"]) if quote.get("span") else None})
                     for quote in speech.quotes or []]  # fmt: skip
            checked = [
                {**quote.as_json(), "span": list(quote.span) if quote.span else None}
                for quote in quotes_recheck(
                    speech.text, passage=debate.passage, quote_char_limit=limit, given=given
                )
            ]
            if checked != speech.quotes:
                speech.quotes = checked
                changed.append(speech)
        Speech.objects.bulk_update(changed, ["quotes"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [("debate", "0008_speech_phases_and_best_of_n")]

    operations = [migrations.RunPython(recheck, migrations.RunPython.noop)]
