from django.apps import AppConfig


class DebateConfig(AppConfig):
    name = "debate"

    def ready(self) -> None:
        from debate import jobs
        from debate.kinds import register

        register()
        jobs.register()
