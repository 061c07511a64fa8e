from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "feedback"
    verbose_name = "AI feedback"

    def ready(self) -> None:
        from annotations.hooks import labels_committed_register

        # tasks: registers the tasks feedback.services sends by name.
        from feedback import dashboard, jobs, tasks  # noqa: F401
        from feedback.services import shortcuts_apply

        jobs.register()
        dashboard.register()
        labels_committed_register(lambda queue_ids: shortcuts_apply(queue_ids=queue_ids))
