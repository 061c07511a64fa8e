from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Rating queues"

    def ready(self) -> None:
        from annotations.jobs import register

        register()
