from django.contrib import admin

from core.admin import ServiceWrittenAdmin
from llm.forms import ModelConfigForm
from llm.models import ModelConfig, ModelTrial


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
