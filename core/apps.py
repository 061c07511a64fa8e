from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Arbiter core"

    def ready(self) -> None:
        from django.urls import register_converter

        from core.types import IdConverter

        register_converter(IdConverter, "id")
