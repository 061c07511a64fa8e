from django.contrib import admin

from debate.models import Debate, JudgeTurn, Judgment, ProtocolPrompt, Speech


class SpeechInline(admin.TabularInline):
    model = Speech
    extra = 0
    fields = ("round", "side", "status", "text", "truncated", "completion_tokens", "total_s")
    readonly_fields = fields


class JudgeTurnInline(admin.TabularInline):
    model = JudgeTurn
    extra = 0
    readonly_fields = ["round", "probability_a", "message", "action", "created_at"]


@admin.register(Debate)
class DebateAdmin(admin.ModelAdmin):
    list_display = ["id", "question", "protocol", "judge", "status", "current_round", "created_at"]
    list_filter = ["status", "protocol", "turn_order"]
    search_fields = ["question"]
    inlines = [SpeechInline, JudgeTurnInline]


@admin.register(Speech)
class SpeechAdmin(admin.ModelAdmin):
    list_display = ["id", "debate", "round", "side", "status", "completion_tokens", "total_s"]
    list_filter = ["status"]


@admin.register(JudgeTurn)
class JudgeTurnAdmin(admin.ModelAdmin):
    list_display = ["id", "debate", "round", "probability_a", "action", "created_at"]


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ["id", "debate", "judge", "probability_a", "judge_turns", "time_spent_s"]
    readonly_fields = [
        "debate",
        "judge",
        "probability_a",
        "rationale",
        "judge_turns",
        "time_spent_s",
    ]


@admin.register(ProtocolPrompt)
class ProtocolPromptAdmin(admin.ModelAdmin):
    list_display = ["protocol", "updated_at"]
