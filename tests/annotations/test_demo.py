from django.contrib.auth.models import User
from django.core.management import call_command

from annotations.demo import QUEUE_NAME
from annotations.models import Item, Queue
from annotations.services import queue_item_claim


def test_the_demo_gives_both_annotators_a_queue_to_label_once(db):
    call_command("seed_demo", password="demo-password-for-tests", verbosity=0)
    call_command("seed_demo", password="demo-password-for-tests", verbosity=0)
    queue = Queue.objects.get(name=QUEUE_NAME)
    assert sorted(queue.members.values_list("username", flat=True)) == ["annotator1", "annotator2"]
    assert Item.objects.filter(queue=queue, is_gold=False).count() == queue.item_count == 5
    assert Item.objects.filter(queue=queue, is_gold=True).count() == 1
    lease = queue_item_claim(queue=queue, annotator=User.objects.get(username="annotator1"))
    assert lease is not None and "egg" in lease.item.payload["prompt"]
