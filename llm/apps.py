from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "llm"

    def ready(self) -> None:
        import llm.tasks  # noqa: F401 - registers the tasks llm.services sends by name
        from llm.jobs import register

        register()
