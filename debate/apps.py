from django.apps import AppConfig


class DebateConfig(AppConfig):
    name = "debate"

    def ready(self) -> None:
        from debate import auto_judge, jobs
        from debate.kinds import register

        register()
        jobs.register()
        auto_judge.register()
