"""The bundled config's repetition penalties arrive by a data migration that leaves an edited
config alone."""

from __future__ import annotations

import importlib

from django.apps import apps

from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

MIGRATION = importlib.import_module("llm.migrations.0005_fill_bundled_penalties")


def _penalties() -> tuple[float, float]:
    config = ModelConfig.objects.get(name=BUNDLED_CONFIG_NAME)
    return config.frequency_penalty, config.presence_penalty


def test_a_fresh_install_samples_the_bundled_model_with_penalties(db):
    assert _penalties() == (0.4, 0.2)
    params = ModelConfig.objects.get(name=BUNDLED_CONFIG_NAME).generation_params()
    assert (params.frequency_penalty, params.presence_penalty) == (0.4, 0.2)


def test_the_migration_is_reversible_and_skips_an_edited_config(db):
    MIGRATION.empty_bundled_penalties(apps, None)
    assert _penalties() == (0.0, 0.0)
    MIGRATION.fill_bundled_penalties(apps, None)
    assert _penalties() == (0.4, 0.2)

    MIGRATION.empty_bundled_penalties(apps, None)
    ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).update(temperature=0.3)
    MIGRATION.fill_bundled_penalties(apps, None)
    assert _penalties() == (0.0, 0.0)  # a researcher's config is theirs

    ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).update(
        temperature=0.7, stop_sequences=["\n\n"]
    )
    MIGRATION.fill_bundled_penalties(apps, None)
    assert _penalties() == (0.0, 0.0)
