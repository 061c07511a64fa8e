from collections.abc import Sequence

from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "feedback"
    verbose_name = "AI feedback"

    def ready(self) -> None:
        from annotations.hooks import labels_committed_register

        # tasks: registers the tasks feedback.services sends by name.
        from feedback import dashboard, exports, jobs, rlaif, tasks  # noqa: F401
        from feedback.services import shortcuts_apply

        jobs.register()
        dashboard.register()
        exports.register()
        rlaif.register()

        def shortcuts_after_labels(queue_ids: Sequence[int]) -> None:
            shortcuts_apply(queue_ids=queue_ids)

        labels_committed_register(shortcuts_after_labels)
