import os
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("arbiter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_after_setup.connect
def model_workers_yield_the_cores(sender: str, instance: Any, **kwargs: Any) -> None:
    """A worker that runs models lowers its priority before its pool starts (the pool's
    processes inherit it): where web replicas share its cores, a label waits milliseconds for
    a core instead of a generation's whole step, and a generation loses little."""
    from django.conf import settings

    queues = set(instance.app.amqp.queues.consume_from or ())
    if queues & set(settings.MODEL_QUEUES) and settings.MODEL_WORKER_NICE:
        os.nice(settings.MODEL_WORKER_NICE)
