from django.apps import AppConfig


class AmplificationConfig(AppConfig):
    name = "amplification"

    def ready(self) -> None:
        from amplification import jobs
        from amplification.kinds import register

        register()
        jobs.register()
