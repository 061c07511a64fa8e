"""Demo objects for `manage.py seed_demo`: one debate waiting for annotator1 to judge it."""

from __future__ import annotations

from django.contrib.auth.models import User

from debate.models import Debate
from debate.services import debate_create
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

QUESTION = "Why did the keeper paint the lighthouse door green every spring?"
PASSAGE = (
    "Every spring, before the first supply boat came, Ansel Marr scraped the lighthouse door "
    "down to the wood and painted it green. The salt wind peeled the paint by autumn, and a "
    "green door could be seen from the channel long after the white tower had vanished into "
    "the fog. The boat shed beside it he left red, because nobody steered by the boat shed."
)


def seed() -> list[str]:
    if Debate.objects.filter(question=QUESTION).exists():
        return []
    judge = User.objects.filter(username="annotator1").first()
    researcher = User.objects.filter(username="researcher").first()
    config = ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).first()
    if judge is None or researcher is None or config is None:
        return []
    debate = Debate(
        question=QUESTION,
        answer_a="So that boats could see the door through the fog",
        answer_b="Because green paint resists the salt wind",
        correct_side="a",
        passage=PASSAGE,
        debater_a_config=config,
        judge=judge,
        max_rounds=2,
    )
    debate_create(debate=debate, created_by=researcher)
    return [f"demo debate {debate.pk} waiting for annotator1"]
