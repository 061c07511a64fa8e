"""Admin base classes for tables the services write. The Django admin offers "+ Add" on every
table by default; a row added there skips the service that creates it with what it needs (a
debate's speeches, a tree's root, a token's digest, a job's task), so such tables offer none."""

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest


class ServiceCreatedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows only a service creates: never added here; the fields an admin may correct stay
    editable (list them editable by leaving them out of readonly_fields)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class ServiceWrittenAdmin(ServiceCreatedAdmin):
    """Rows only the services write (trainings, scores, candidates, labels, jobs): shown, never
    added or edited here, so the admin cannot break the invariants those services keep."""

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [f.name for f in self.model._meta.get_fields() if f.concrete]


class ServiceCreatedInline(admin.TabularInline):  # type: ignore[type-arg]
    """An inline of service-created rows: no "Add another" under the parent's form."""

    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


# --- webhooks -------------------------------------------------------------------------------
# Imported here, below the base classes other apps import from this module.
from typing import Any  # noqa: E402

from django import forms  # noqa: E402
from django.contrib import messages  # noqa: E402
from django.core.exceptions import ValidationError  # noqa: E402
from django.db.models import QuerySet  # noqa: E402

from core.models import WebhookDelivery, WebhookEndpoint, WebhookEvent  # noqa: E402
from core.webhooks import (  # noqa: E402
    WebhookError,
    endpoint_events,
    webhook_endpoint_enable,
    webhook_redeliver,
    webhook_secret_new,
    webhook_url_check,
)


class WebhookEndpointAdminForm(forms.ModelForm):  # type: ignore[type-arg]
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["owner", "name", "url", "events", "enabled", "disabled_reason"]

    def clean_url(self) -> str:
        request = getattr(self, "request", None)
        own = [request.get_host()] if request is not None else []
        return webhook_url_check(self.cleaned_data["url"], own_hosts=own)

    def clean_events(self) -> list[str]:
        try:
            return endpoint_events(self.cleaned_data["events"])
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None


class WebhookDeliveryInline(ServiceCreatedInline):
    model = WebhookDelivery
    fields = ["event", "status", "attempts", "response_status", "last_error", "created_at"]
    readonly_fields = ["event", "status", "attempts", "response_status", "last_error", "created_at"]
    ordering = ["-created_at"]
    max_num = 0
    show_change_link = True


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Admins register endpoints for anyone here; the secret is made by the server."""

    form = WebhookEndpointAdminForm
    list_display = ["name", "url", "owner", "enabled", "failures_in_row", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "url", "owner__username"]
    readonly_fields = ["secret", "failures_in_row", "created_at"]
    inlines = [WebhookDeliveryInline]
    actions = ["enable", "disable"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):  # type: ignore[no-untyped-def]
        form = super().get_form(request, obj, change, **kwargs)
        form.request = request  # type: ignore[attr-defined]
        return form

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: object, change: bool):  # type: ignore[no-untyped-def]
        if not obj.secret:
            obj.secret = webhook_secret_new()
        super().save_model(request, obj, form, change)

    @admin.action(description="Enable the selected endpoints (their pending deliveries go out)")
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_enable(endpoint=endpoint, enabled=True)

    @admin.action(description="Disable the selected endpoints")
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_enable(endpoint=endpoint, enabled=False, by="Disabled by an admin.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ServiceWrittenAdmin):
    list_display = ["event", "endpoint", "status", "attempts", "response_status", "created_at"]
    list_filter = ["status", "event"]
    actions = ["redeliver"]

    @admin.action(description="Redeliver the selected deliveries (same body and key)")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset.select_related("endpoint"):
            try:
                webhook_redeliver(delivery=delivery)
            except WebhookError as error:
                self.message_user(request, f"{delivery}: {error.message}", messages.WARNING)
