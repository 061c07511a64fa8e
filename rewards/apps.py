from django.apps import AppConfig


class RewardsConfig(AppConfig):
    name = "rewards"

    def ready(self) -> None:
        from annotations.hooks import labels_committed_register
        from rewards import jobs
        from rewards.services import labels_committed

        jobs.register()
        labels_committed_register(lambda queue_ids: labels_committed(queue_ids=queue_ids))
