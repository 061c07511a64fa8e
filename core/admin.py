from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest


class ServiceWrittenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows only the services write (trainings, scores, candidates): shown, never added or
    edited here, so the admin cannot break the invariants those services keep."""

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [f.name for f in self.model._meta.get_fields() if f.concrete]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
