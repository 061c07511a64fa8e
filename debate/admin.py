from django.contrib import admin

from core.admin import ServiceCreatedAdmin, ServiceCreatedInline, ServiceWrittenAdmin
from debate.models import (
    BankQuestion,
    Debate,
    DebateBatch,
    JudgeTurn,
    Judgment,
    Market,
    MarketCandidate,
    MarketStep,
    ProtocolPrompt,
    QuestionBank,
    Speech,
    SpeechCandidate,
    Verdict,
)


class SpeechInline(ServiceCreatedInline):
    model = Speech
    fields = ("round", "side", "status", "text", "truncated", "completion_tokens", "total_s")
    readonly_fields = fields


class JudgeTurnInline(ServiceCreatedInline):
    model = JudgeTurn
    readonly_fields = ["round", "probability_a", "message", "action", "created_at"]


class VerdictInline(ServiceCreatedInline):
    model = Verdict
    fields = ("kind", "judge_name", "judge_config", "probability_a", "judge_turns")
    readonly_fields = fields


# A debate starts through debate_create (its speeches, its queue item); imports write the rest.
@admin.register(Debate)
class DebateAdmin(ServiceCreatedAdmin):
    list_display = ["id", "question", "protocol", "judge", "status", "current_round", "created_at"]
    list_filter = ["status", "protocol", "turn_order", "source", "human_debaters"]
    search_fields = ["question", "room_name"]
    raw_id_fields = ["batch", "bank_question"]
    inlines = [SpeechInline, JudgeTurnInline, VerdictInline]


@admin.register(Speech)
class SpeechAdmin(ServiceWrittenAdmin):
    list_display = ["id", "debate", "round", "side", "status", "completion_tokens", "total_s"]
    list_filter = ["status"]


@admin.register(SpeechCandidate)
class SpeechCandidateAdmin(ServiceWrittenAdmin):
    list_display = ["id", "speech", "index", "reward", "reward_version", "chosen"]
    list_filter = ["chosen"]
    # Best-of-n writes them (debate/generation.py); the judge saw the chosen one.


@admin.register(JudgeTurn)
class JudgeTurnAdmin(ServiceWrittenAdmin):
    list_display = ["id", "debate", "round", "probability_a", "action", "created_at"]


@admin.register(Judgment)
class JudgmentAdmin(ServiceWrittenAdmin):
    list_display = ["id", "debate", "judge", "probability_a", "judge_turns", "time_spent_s"]


# One row per protocol, made by a data migration; edited here or on the prompts page.
@admin.register(ProtocolPrompt)
class ProtocolPromptAdmin(ServiceCreatedAdmin):
    list_display = ["protocol", "updated_at"]


@admin.register(Verdict)
class VerdictAdmin(ServiceWrittenAdmin):
    list_display = ["id", "debate", "kind", "judge_name", "probability_a", "judge_turns"]
    list_filter = ["kind"]
    search_fields = ["judge_name", "debate__room_name"]
    raw_id_fields = ["debate"]


class BankQuestionInline(ServiceCreatedInline):
    model = BankQuestion
    fields = ("line", "question", "gold_index", "distractor_index")
    show_change_link = True


# Banks come from an upload, checked line by line (debate.research.imports).
@admin.register(QuestionBank)
class QuestionBankAdmin(ServiceCreatedAdmin):
    list_display = ["id", "name", "created_by", "created_at"]
    search_fields = ["name"]
    inlines = [BankQuestionInline]


@admin.register(BankQuestion)
class BankQuestionAdmin(ServiceCreatedAdmin):
    list_display = ["id", "bank", "line", "question", "gold_index"]
    list_filter = ["bank"]
    search_fields = ["question"]


# A batch is created with its debates and its run (debate.research.batches.batch_create).
@admin.register(DebateBatch)
class DebateBatchAdmin(ServiceCreatedAdmin):
    list_display = ["id", "name", "bank", "status", "steps_done", "steps_total", "created_at"]
    list_filter = ["status"]
    readonly_fields = ["status", "steps_done", "steps_total", "error", "started_at", "finished_at"]


class MarketStepInline(ServiceCreatedInline):
    model = MarketStep
    fields = ("step", "probability_before", "probability_after", "method", "speech")
    readonly_fields = fields
    show_change_link = True


# A batch's run writes markets, their steps and candidates (debate.research.markets).
@admin.register(Market)
class MarketAdmin(ServiceWrittenAdmin):
    list_display = ["id", "debate", "predictor_config", "candidates", "epsilon",
                    "initial_probability_a", "stop_reason"]  # fmt: skip
    list_filter = ["stop_reason", "initial_method"]
    raw_id_fields = ["debate"]
    inlines = [MarketStepInline]


class MarketCandidateInline(ServiceCreatedInline):
    model = MarketCandidate
    fields = ("index", "argued_side", "text", "predicted_probability_a", "option_mass", "kept")
    readonly_fields = fields


@admin.register(MarketStep)
class MarketStepAdmin(ServiceWrittenAdmin):
    list_display = ["id", "market", "step", "probability_before", "probability_after", "method"]
    raw_id_fields = ["market", "speech"]
    inlines = [MarketCandidateInline]


@admin.register(MarketCandidate)
class MarketCandidateAdmin(ServiceWrittenAdmin):
    list_display = ["id", "step", "index", "argued_side", "predicted_probability_a", "kept"]
    list_filter = ["kept"]
    raw_id_fields = ["step"]
