import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from annotations.models import Item
from debate.models import DebateStatus, JudgeTurn, SpeechStatus
from debate.services import debates_to_queue
from tests.annotations.factories import QueueFactory
from tests.factories import DebateFactory
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db


def judged_debate(**fields):
    debate = DebateFactory(status=DebateStatus.JUDGED, current_round=1, **fields)
    for side, text in [("a", "Green, <quote>painted his door green</quote>."), ("b", "Red.")]:
        debate.speeches.create(round=1, side=side, status=SpeechStatus.DONE, text=text)
    JudgeTurn.objects.create(debate=debate, round=1, probability_a=70, action="end",
                             message="Why red?")  # fmt: skip
    return debate


def test_judged_debates_become_transcript_items_once():
    queue = QueueFactory(kind="debate_judgment", labels_per_item=2)
    debate = judged_debate()
    DebateFactory()  # not judged: left out

    assert debates_to_queue(queue=queue) == 1
    assert debates_to_queue(queue=queue) == 0  # each debate once

    item = Item.objects.get(queue=queue)
    assert item.external_id == f"debate-{debate.pk}"
    assert [turn["speaker"] for turn in item.payload["turns"]] == [
        "Debater A",
        "Debater B",
        "Judge",
    ]
    assert item.payload["turns"][0]["text"].startswith("Green")
    assert "passage" not in item.payload  # annotators rate the arguments, not the source


def test_a_queue_of_another_kind_is_refused_and_nothing_changes():
    queue = QueueFactory(kind="pairwise")
    judged_debate()
    with pytest.raises(ValidationError, match="DebatePayload"):
        debates_to_queue(queue=queue)
    assert not Item.objects.exists()


def test_researchers_add_from_the_debate_list(users):
    queue = QueueFactory(kind="debate_judgment")
    judged_debate()
    url = reverse("debate:to_queue")
    assert signed_in(users["annotator"]).post(url, {"queue": queue.pk}).status_code == 403
    assert signed_in(users["researcher"]).get(url).status_code == 405
    response = signed_in(users["researcher"]).post(url, {"queue": queue.pk}, follow=True)
    assert "Added 1 judged debate to" in response.content.decode()
    assert Item.objects.filter(queue=queue).count() == 1
    other = QueueFactory(kind="pairwise")
    refused = signed_in(users["researcher"]).post(url, {"queue": other.pk}, follow=True)
    assert "Choose a debate-judgment queue." in refused.content.decode()


def test_with_no_debate_judgment_queue_the_list_says_how_to_make_one(users):
    QueueFactory(kind="pairwise")  # a queue of another kind is no help
    judged_debate()
    html = signed_in(users["researcher"]).get(reverse("debate:list")).content.decode()
    new_queue = reverse("annotations:queue_create") + "?kind=debate_judgment"
    assert 'id="no-judgment-queue"' in html and f'href="{new_queue}"' in html
    assert "Add every judged debate to" not in html  # no empty select
    form = signed_in(users["researcher"]).get(new_queue).content.decode()
    assert '<option value="debate_judgment" selected>' in form
    QueueFactory(kind="debate_judgment")
    html = signed_in(users["researcher"]).get(reverse("debate:list")).content.decode()
    assert "Add every judged debate to" in html and 'id="no-judgment-queue"' not in html
