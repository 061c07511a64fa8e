from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Arbiter core"

    def ready(self) -> None:
        from django.urls import register_converter

        import core.tasks  # noqa: F401 - registers the tasks core.webhooks sends by name
        import core.workers  # noqa: F401 - connects the worker heartbeat to Celery's signals
        from core.types import IdConverter

        register_converter(IdConverter, "id")
