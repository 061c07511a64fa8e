"""Demo objects for `manage.py seed_demo`: a two-principle constitution and a model annotator
(the bundled SmolLM2) on the demo pairwise queue, ready for Run now."""

from __future__ import annotations

from django.contrib.auth.models import User

from annotations.demo import QUEUE_NAME
from annotations.models import Queue
from feedback.models import Constitution, ModelAnnotator
from feedback.services import constitution_create, model_annotator_save
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

CONSTITUTION = "Demo: helpful and honest"
PRINCIPLES = [
    "Prefer the response that answers the question that was asked.",
    "Prefer the response that says nothing false.",
]


def seed() -> list[str]:
    queue = Queue.objects.filter(name=QUEUE_NAME).first()
    config = ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).first()
    if queue is None or config is None or Constitution.objects.filter(name=CONSTITUTION).exists():
        return []
    researcher = User.objects.filter(username="researcher").first()
    constitution = constitution_create(name=CONSTITUTION, principles=PRINCIPLES, user=researcher)
    model_annotator_save(
        annotator=ModelAnnotator(
            queue=queue, name="SmolLM2 (demo)", model_config=config, constitution=constitution
        ),
        user=researcher,
    )
    return [f"model annotator “SmolLM2 (demo)” on “{QUEUE_NAME}” under “{CONSTITUTION}”"]
