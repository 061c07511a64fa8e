from django.conf import settings

from config.celery import app


def test_stale_speeches_are_swept_every_minute_on_the_default_queue():
    name = "debate.tasks.speeches_requeue_stale_task"
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == name]
    assert [entry["schedule"] for entry in entries] == [60.0]
    # Not behind the generations it rescues; speeches themselves go to `generation`.
    assert app.amqp.router.route({}, name)["queue"].name == "default"
    assert app.amqp.router.route({}, "debate.tasks.speeches_generate_task")["queue"].name == (
        "generation"
    )
