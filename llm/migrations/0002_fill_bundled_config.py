from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

NAME = "SmolLM2-135M-Instruct (bundled)"


def fill_bundled_config(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    apps.get_model("llm", "ModelConfig").objects.get_or_create(
        name=NAME,
        defaults={
            "backend": "transformers",
            "model": "bundled:smollm2-135m-instruct",
            "temperature": 0.7,
            "top_p": 0.95,
            "max_new_tokens": 96,
            "system_prompt": "You are a concise, helpful assistant.",
            "stop_sequences": [],
            "timeout_s": 120.0,
        },
    )


def empty_bundled_config(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    apps.get_model("llm", "ModelConfig").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("llm", "0001_model_config_and_trial")]

    operations = [migrations.RunPython(fill_bundled_config, empty_bundled_config)]
