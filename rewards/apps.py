from django.apps import AppConfig


class RewardsConfig(AppConfig):
    name = "rewards"

    def ready(self) -> None:
        from annotations.hooks import labels_committed_register
        from llm.rewarders import run_rewarder_register

        # tasks: registers the tasks rewards.services sends by name.
        from rewards import jobs, tasks  # noqa: F401
        from rewards.scoring import version_id_rewards
        from rewards.services import labels_committed

        jobs.register()
        labels_committed_register(lambda queue_ids: labels_committed(queue_ids=queue_ids))
        run_rewarder_register(version_id_rewards)
