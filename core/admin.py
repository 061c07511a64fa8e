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
