from django.apps import AppConfig


class DebateConfig(AppConfig):
    name = "debate"

    def ready(self) -> None:
        # tasks: registers the generation task, which debate.generation sends by name.
        from debate import auto_judge, jobs, tasks  # noqa: F401
        from debate.kinds import register

        register()
        jobs.register()
        auto_judge.register()
