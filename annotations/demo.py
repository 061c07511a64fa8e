"""Demo objects for `manage.py seed_demo`: a pairwise queue both demo annotators label in,
with one gold item, so the keyboard queue, the dashboard and the exports have something to show."""

from __future__ import annotations

from django.contrib.auth.models import User

from annotations.kinds import ChoiceValue, PairwisePayload
from annotations.models import Priority, Queue
from annotations.services import NewItem, queue_items_create, queue_members_set, queue_save

QUEUE_NAME = "Demo: which answer helps more?"
INSTRUCTIONS = """Read the question, then both answers. Press **1** if answer A helps the person
more, **2** for B, **T** for a tie and **B** if both are bad. **S** skips, **U** undoes your
last label for 60 seconds."""

# (question, answer A, answer B); the last one is gold, with A the expected choice.
PAIRS = [
    (
        "How long should I boil an egg for a runny yolk?",
        "About six minutes from the moment it goes into boiling water, then cool it in cold water.",
        "Eggs are a good source of protein and can be cooked in many ways.",
    ),
    (
        "What does `git stash` do?",
        "It deletes your uncommitted changes permanently.",
        "It sets your uncommitted changes aside so you can get them back with `git stash pop`.",
    ),
    (
        "Why is the sky blue?",
        "Air scatters short (blue) wavelengths of sunlight far more than long (red) ones.",
        "Because it reflects the colour of the oceans.",
    ),
    (
        "Translate 'thank you' into French.",
        "Merci.",
        "Merci beaucoup, or simply merci.",
    ),
    (
        "Is 91 a prime number?",
        "Yes, 91 has no divisors other than 1 and itself.",
        "No: 91 = 7 × 13.",
    ),
    (
        "What is the capital of Australia?",
        "Canberra.",
        "Sydney.",
    ),
]


def seed() -> list[str]:
    if Queue.objects.filter(name=QUEUE_NAME).exists():
        return []
    annotators = list(User.objects.filter(username__in=["annotator1", "annotator2"]))
    researcher = User.objects.filter(username="researcher").first()
    if not annotators:
        return []
    queue = queue_save(
        queue=Queue(
            name=QUEUE_NAME,
            kind="pairwise",
            instructions=INSTRUCTIONS,
            labels_per_item=2,
            priority=Priority.FIFO,
            gold_rate=0.2,
        ),
        user=researcher,
    )
    queue_members_set(queue=queue, users=annotators)
    *regular, gold = PAIRS
    items = [
        NewItem(
            payload=PairwisePayload(prompt=q, response_a=a, response_b=b), external_id=f"demo-{n}"
        )
        for n, (q, a, b) in enumerate(regular, start=1)
    ]
    question, answer_a, answer_b = gold
    items.append(
        NewItem(
            payload=PairwisePayload(prompt=question, response_a=answer_a, response_b=answer_b),
            gold=ChoiceValue(choice="a"),
            external_id="demo-gold",
        )
    )
    queue_items_create(queue=queue, items=items)
    return [f"demo queue “{QUEUE_NAME}” with {len(items)} items for annotator1 and annotator2"]
