from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Oversight experiments"

    def ready(self) -> None:
        from experiments.jobs import register

        register()
