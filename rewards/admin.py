from django.contrib import admin

from core.admin import ServiceCreatedInline, ServiceWrittenAdmin
from rewards.models import (
    BestOfNExperiment,
    BestOfNSample,
    BestOfNScore,
    DebateScore,
    Embedding,
    HumanGold,
    PolicyEval,
    PolicyRun,
    RewardModel,
    RewardVersion,
    SplitGroup,
)


class VersionInline(ServiceCreatedInline):
    model = RewardVersion
    fields = ["number", "speed", "trigger", "status", "label_count", "wall_time_s", "created_at"]
    readonly_fields = ["number", "speed", "trigger", "status", "label_count", "wall_time_s",
                       "created_at"]  # fmt: skip
    can_delete = False
    show_change_link = True


@admin.register(RewardModel)
class RewardModelAdmin(admin.ModelAdmin):
    list_display = ["name", "active_version", "fast_every", "full_every_hours", "margin"]
    search_fields = ["name"]
    filter_horizontal = ["queues"]
    raw_id_fields = ["active_version", "created_by"]
    inlines = [VersionInline]


@admin.register(RewardVersion)
class RewardVersionAdmin(ServiceWrittenAdmin):
    list_display = ["reward_model", "number", "speed", "status", "label_count", "created_at"]
    list_filter = ["status", "speed", "trigger"]
    # Versions change only through the services (the gate, roll back).


@admin.register(Embedding)
class EmbeddingAdmin(ServiceWrittenAdmin):
    list_display = ["key", "created_at"]
    search_fields = ["key"]


@admin.register(DebateScore)
class DebateScoreAdmin(ServiceWrittenAdmin):
    list_display = ["debate_id", "version", "probability_a", "reward_a", "reward_b", "scored_at"]
    search_fields = ["=debate_id"]
    # The automatic judge writes them (rewards/auto_judge.py).


@admin.register(SplitGroup)
class SplitGroupAdmin(ServiceWrittenAdmin):
    list_display = ["reward_model", "group", "heldout", "created_at"]
    list_filter = ["heldout"]
    search_fields = ["group"]
    # A side is stored once by a training run and never changed (rewards/data.py).


@admin.register(BestOfNExperiment)
class BestOfNExperimentAdmin(ServiceWrittenAdmin):
    list_display = ["name", "policy", "samples_per_prompt", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    # Started through best_of_n_start (checked there); a worker writes samples and scores.


@admin.register(BestOfNSample)
class BestOfNSampleAdmin(ServiceWrittenAdmin):
    list_display = ["experiment", "prompt_index", "sample_index", "completion_tokens"]
    search_fields = ["=experiment__id"]


@admin.register(BestOfNScore)
class BestOfNScoreAdmin(ServiceWrittenAdmin):
    list_display = ["sample", "version", "score"]


@admin.register(PolicyRun)
class PolicyRunAdmin(ServiceWrittenAdmin):
    list_display = ["run", "queue", "reward_version", "gold_version", "created_at"]
    search_fields = ["=run__id"]
    # Written with its run by rewards.policy.policy_run_start.


@admin.register(PolicyEval)
class PolicyEvalAdmin(ServiceWrittenAdmin):
    list_display = ["run", "queue", "created_at"]
    search_fields = ["=run__id"]
    # Made by rewards.policy.policy_eval_start; its sides are what keep the evaluation blind.


@admin.register(HumanGold)
class HumanGoldAdmin(ServiceWrittenAdmin):
    list_display = ["experiment", "queue", "created_at"]
    search_fields = ["=experiment__id"]
    # Made by the experiment's worker (rewards.human_gold.human_gold_queue_create); its pairs
    # say which side is best-of-n, which is what keeps the comparison blind.
