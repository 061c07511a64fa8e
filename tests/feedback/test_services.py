from typing import Any

import pytest
from django.core.exceptions import ValidationError

from feedback.models import PRINCIPLE_MAX_CHARS, Constitution, LabellingRun, ModelAnnotator
from feedback.services import (
    FeedbackError,
    ProbabilitiesUnavailable,
    constitution_create,
    constitution_version_add,
    labelling_run_start,
    model_annotator_save,
)
from llm.generation import probability_problem
from llm.models import Backend, ModelConfig
from tests.annotations.factories import make_queue
from tests.factories import ModelConfigFactory


def test_an_empty_constitution_is_refused_and_nothing_is_stored(researcher):
    with pytest.raises(ValidationError, match="at least one principle"):
        constitution_create(name="empty", principles=["", "   "], user=researcher)
    assert not Constitution.objects.exists()


def test_a_principle_over_the_limit_is_refused_by_its_number(researcher):
    with pytest.raises(ValidationError, match="Principle 2 has"):
        constitution_create(
            name="long", principles=["short", "x" * (PRINCIPLE_MAX_CHARS + 1)], user=researcher
        )
    assert not Constitution.objects.exists()


def test_a_new_version_keeps_the_old_one(constitution, researcher):
    version = constitution_version_add(
        constitution=constitution, principles=["Only this one."], user=researcher
    )
    assert version.number == 2
    assert [p.text for p in version.principles.all()] == ["Only this one."]
    first = constitution.versions.get(number=1)
    assert first.principles.count() == 2
    assert constitution.latest_version == version


def test_a_prompt_naming_an_unknown_field_is_refused(queue, model_config, constitution):
    annotator = ModelAnnotator(queue=queue, name="x", model_config=model_config,
                               constitution=constitution, prompt="$principle $hidden")  # fmt: skip
    with pytest.raises(ValidationError, match="unknown field hidden"):
        model_annotator_save(annotator=annotator, user=None)
    assert not ModelAnnotator.objects.exists()


def test_a_run_is_queued_once(model_annotator, researcher, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        run = labelling_run_start(annotator=model_annotator, user=researcher)
    assert len(callbacks) == 1
    assert run.items_total == 6
    assert run.model_snapshot["name"] == "bundled judge"
    assert "$principle" in run.prompt_template
    with pytest.raises(FeedbackError, match="already queued or running"):
        labelling_run_start(annotator=model_annotator, user=researcher)
    assert LabellingRun.objects.count() == 1


def test_a_queue_without_items_starts_nothing(model_config, constitution, researcher):
    empty = make_queue(name="empty")
    annotator = model_annotator_save(
        annotator=ModelAnnotator(queue=empty, name="bot", model_config=model_config,
                                 constitution=constitution),
        user=researcher,
    )  # fmt: skip
    with pytest.raises(FeedbackError, match="no items"):
        labelling_run_start(annotator=annotator, user=researcher)
    assert not LabellingRun.objects.exists()


def _server_config(temperature: float) -> Any:
    return ModelConfigFactory(
        name=f"server at {temperature}", backend=Backend.OPENAI, model="m",
        base_url="http://127.0.0.1:9/v1", temperature=temperature,
    )  # fmt: skip


def test_a_config_that_cannot_give_probabilities_is_refused_and_starts_nothing(
    queue, constitution, researcher, django_capture_on_commit_callbacks
):
    greedy_server = _server_config(0.0)
    annotator = ModelAnnotator(queue=queue, name="greedy", model_config=greedy_server,
                               constitution=constitution)  # fmt: skip
    with pytest.raises(ValidationError, match="temperature above 0") as refused:
        model_annotator_save(annotator=annotator, user=researcher)
    assert "model_config" in refused.value.message_dict
    assert not ModelAnnotator.objects.exists()
    # Sampling servers and local models (log-probabilities, any temperature) are accepted.
    sampled = model_annotator_save(
        annotator=ModelAnnotator(queue=queue, name="sampled", model_config=_server_config(0.7),
                                 constitution=constitution),
        user=researcher,
    )  # fmt: skip
    local = ModelConfigFactory(name="local greedy", temperature=0.0)
    model_annotator_save(
        annotator=ModelAnnotator(queue=queue, name="local", model_config=local,
                                 constitution=constitution),
        user=researcher,
    )  # fmt: skip
    # The config changed after the annotator was saved: the run is refused, nothing queued.
    ModelConfig.objects.filter(pk=sampled.model_config_id).update(temperature=0.0)
    sampled.refresh_from_db()
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(ProbabilitiesUnavailable, match="temperature above 0") as error,
    ):
        labelling_run_start(annotator=sampled, user=researcher)
    assert error.value.status == 422
    assert callbacks == [] and not LabellingRun.objects.exists()


def test_the_rule_is_one_function_of_the_config():
    local = ModelConfig(name="t", backend=Backend.TRANSFORMERS, temperature=0)
    assert probability_problem(local) is None
    sampled = ModelConfig(name="s", backend=Backend.OPENAI, temperature=0.2)
    assert probability_problem(sampled) is None
    problem = probability_problem(ModelConfig(name="g", backend=Backend.OPENAI, temperature=0))
    assert problem is not None and problem.startswith("g is served by an OpenAI-compatible")
