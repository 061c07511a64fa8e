"""The one JSON API (django-ninja): bearer-token auth, JSON errors, and each app's Router.

Every error is a 4xx with a JSON body `{"detail": …}`. Apps contribute a `Router` in their
own `api.py`; this module mounts them, so the debate, amplification and reward-model APIs
share one OpenAPI document (`/api/docs`) and one authentication.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import NinjaAPI, Schema
from ninja.errors import HttpError
from ninja.security import HttpBearer

from annotations.models import ApiToken
from annotations.services import AnnotationError, api_token_digest
from core import sql
from core.roles import Role, role_columns, roles_remember, user_has_role

# Writing last_used_at on every call would put an UPDATE on the hot path.
TOKEN_TOUCH_EVERY = timedelta(minutes=5)


# Every API call runs this: a prepared statement, not an ORM build (core/sql.py).
_TOKEN_USER = f"""
SELECT {sql.columns(User, "u")}, t.id,
       (t.last_used_at IS NULL OR t.last_used_at < %(stale)s), {role_columns("u.id")}
FROM annotations_apitoken t JOIN auth_user u ON u.id = t.user_id
WHERE t.digest = %(digest)s AND u.is_active
"""


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        now = timezone.now()
        params = {"digest": api_token_digest(token), "stale": now - TOKEN_TOUCH_EVERY}
        found = sql.fetch_model(User, _TOKEN_USER, params)
        if found is None:
            return None
        user, (token_id, stale, *roles) = found
        roles_remember(user, roles)
        if stale:
            ApiToken.objects.filter(pk=token_id).update(last_used_at=now)
        request.user = user
        return user


class Detail(Schema):
    """Every error body."""

    detail: str


def api_user(request: HttpRequest) -> User:
    """The token's user (TokenAuth has run)."""
    user = request.auth  # type: ignore[attr-defined]
    assert isinstance(user, User)
    return user


def api_require(request: HttpRequest, *roles: Role) -> User:
    """The token's user if they hold one of `roles`, else a 403."""
    user = api_user(request)
    if not any(user_has_role(user, role) for role in roles):
        raise HttpError(403, f"This needs the {' or '.join(roles)} role.")
    return user


api = NinjaAPI(
    title="Arbiter API",
    version="1",
    description="Rating queues: claim, label, undo; import items; export labels.",
    auth=TokenAuth(),
    urls_namespace="api",
)


@api.exception_handler(AnnotationError)
def _annotation_error(request: HttpRequest, error: AnnotationError) -> HttpResponse:
    return api.create_response(request, {"detail": error.message}, status=error.status)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, error: ValidationError) -> HttpResponse:
    return api.create_response(request, {"detail": " ".join(error.messages)}, status=400)


def _mount() -> None:
    # Imported here: each app's api module imports Detail and api_require from this one.
    from annotations.api import exports, queues

    api.add_router("/queues", queues)
    api.add_router("/exports", exports)
    api.add_router("/trees", "amplification.api.trees")


_mount()
