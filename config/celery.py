import contextlib
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
        autogroup_nice(settings.MODEL_WORKER_NICE)


def autogroup_nice(nice: int) -> None:
    """Where Linux groups processes by session (sched_autogroup), CPU is shared between the
    groups first and a process's nice value counts only inside its own, so `os.nice` does
    nothing against replicas started in sessions of their own (as `config/run.py` and the
    soak start every process). A worker that leads its own session owns its group, so it sets
    the group's nice too; one started inside someone's shell leaves that shell's group alone."""
    if os.getsid(0) != os.getpid():
        return
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
        group.write(str(nice))
