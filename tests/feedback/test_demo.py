from django.core.management import call_command

from annotations.demo import QUEUE_NAME
from feedback.demo import CONSTITUTION, PRINCIPLES
from feedback.models import ModelAnnotator


def test_the_demo_queue_gets_a_model_annotator_once(db):
    call_command("seed_demo", password="demo-password-for-tests", verbosity=0)
    call_command("seed_demo", password="demo-password-for-tests", verbosity=0)
    (annotator,) = ModelAnnotator.objects.all()
    assert annotator.queue.name == QUEUE_NAME
    assert annotator.constitution.name == CONSTITUTION
    version = annotator.constitution.latest_version
    assert [p.text for p in version.principles.all()] == PRINCIPLES
