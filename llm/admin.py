from django.contrib import admin

from core.admin import ServiceWrittenAdmin
from llm.forms import ModelConfigForm
from llm.models import ModelConfig, ModelTrial, TrainingRun


@admin.register(ModelConfig)
class ModelConfigAdmin(admin.ModelAdmin):
    form = ModelConfigForm  # the same checks as the researchers' page
    list_display = ["name", "backend", "model", "temperature", "max_new_tokens", "updated_at"]
    list_filter = ["backend"]
    search_fields = ["name", "model"]
    readonly_fields = ["created_by", "created_at", "updated_at"]


@admin.register(ModelTrial)
class ModelTrialAdmin(ServiceWrittenAdmin):
    list_display = ["id", "config", "user", "status", "completion_tokens", "total_s", "created_at"]
    list_filter = ["status", "config"]


@admin.register(TrainingRun)
class TrainingRunAdmin(ServiceWrittenAdmin):
    list_display = ["id", "name", "kind", "parent", "status", "row_count", "eval_loss_before",
                    "eval_loss_after", "result", "created_at"]  # fmt: skip
    list_filter = ["kind", "status"]
    search_fields = ["name", "dataset_hash"]
    exclude = ["rows"]  # can be large; the API and the page show counts and the hash

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return [f for f in super().get_readonly_fields(request, obj) if f != "rows"]
