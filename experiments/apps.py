from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Oversight experiments"

    def ready(self) -> None:
        # tasks: registers the assistance and transcript tasks, which experiments.services and
        # experiments.protocols send by name
        # (the demo seed sends it from `make run`, a process that imports no tasks itself).
        from experiments import tasks  # noqa: F401
        from experiments.jobs import register

        register()
