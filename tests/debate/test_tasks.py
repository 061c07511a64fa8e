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


def test_stale_markets_are_swept_every_minute_on_the_default_queue_and_runs_ack_late():
    from debate.tasks import market_run_task

    name = "debate.tasks.markets_requeue_stale_task"
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == name]
    assert [entry["schedule"] for entry in entries] == [60.0]
    assert app.amqp.router.route({}, name)["queue"].name == "default"
    assert app.amqp.router.route({}, market_run_task.name)["queue"].name == "generation"
    # A worker lost mid-run gives the message back (its claim then makes it a no-op until the
    # sweeper finds the run silent), as for speeches and batches.
    assert market_run_task.acks_late and market_run_task.reject_on_worker_lost


def test_the_tasks_sent_by_name_are_the_registered_tasks():
    """debate.generation and debate.research.batches send their tasks by name, so that
    debate.tasks imports them and not the other way round: the names must stay true."""
    from celery import current_app

    from debate import tasks
    from debate.generation import SPEECHES_TASK
    from debate.research.batches import BATCH_TASK

    assert current_app.tasks[SPEECHES_TASK] is tasks.speeches_generate_task._get_current_object()
    assert current_app.tasks[BATCH_TASK] is tasks.debate_batch_run_task._get_current_object()
