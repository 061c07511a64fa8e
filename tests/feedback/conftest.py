from __future__ import annotations

from typing import Any, cast

import pytest

from feedback.models import ModelAnnotator
from feedback.services import constitution_create, model_annotator_save
from llm.models import ModelConfig
from tests.annotations.factories import make_queue, pairwise, pairwise_gold
from tests.factories import ModelConfigFactory


@pytest.fixture
def model_config(db: None) -> ModelConfig:
    return cast(ModelConfig, ModelConfigFactory(name="bundled judge"))


@pytest.fixture
def constitution(researcher: Any) -> Any:
    return constitution_create(
        name="Helpful and honest",
        principles=["Prefer the more helpful response.", "Prefer the more honest response."],
        user=researcher,
    )


@pytest.fixture
def queue(annotator: Any, annotator2: Any) -> Any:
    return make_queue(
        name="prefs", members=[annotator, annotator2], items=pairwise(4) + pairwise_gold(2),
        labels_per_item=2,
    )  # fmt: skip


@pytest.fixture
def model_annotator(queue: Any, model_config: Any, constitution: Any, researcher: Any) -> Any:
    return model_annotator_save(
        annotator=ModelAnnotator(
            queue=queue, name="judge-bot", model_config=model_config, constitution=constitution
        ),
        user=researcher,
    )


def humans_label(queue: Any, people: list[Any], answers: dict[str, str]) -> None:
    """Each person labels every item they are given: `answers` by external id (gold items:
    their gold answer)."""
    import uuid

    from annotations.services import label_submit, queue_item_claim

    for person in people:
        while (lease := queue_item_claim(queue=queue, annotator=person)) is not None:
            item = lease.item
            value = item.gold_value if item.is_gold else {"choice": answers[item.external_id]}
            label_submit(assignment_id=lease.pk, annotator=person, value=cast(Any, value),
                         time_spent_ms=800, client_request_id=uuid.uuid4())  # fmt: skip
