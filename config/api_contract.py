"""What every app's API router takes from the project: bearer-token auth with roles
(`researchers`, `annotators`, `TokenAuth`), the one 4xx shape (`Problem`, `Refusal`, `errors`),
the request-body base (`Body`), `Id` and `api_user`. The contract they serve is written at the
top of config/api.py, which builds the one API and mounts the routers; the routers import this
module, never config/api.py, so the API and its routers do not import each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils import timezone
from ninja import Schema
from ninja.errors import HttpError
from ninja.security import HttpBearer
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from annotations.models import ApiToken
from annotations.services import api_token_digest
from core import sql
from core.ratelimit import rate_limit_hit
from core.roles import Role, role_columns, roles_remember, user_has_role
from core.stats import METHOD, Share
from core.types import DbId

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
    """A bearer token of an active user; with `roles`, a user holding none of them is refused
    (403) here, before the operation reads its input."""

    def __init__(self, *roles: Role) -> None:
        super().__init__()
        self.roles = roles

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        now = timezone.now()
        params = {"digest": api_token_digest(token), "stale": now - TOKEN_TOUCH_EVERY}
        found = sql.fetch_model(User, _TOKEN_USER, params)
        if found is None:
            return None
        user, (token_id, stale, *roles) = found
        if settings.API_RATE_LIMIT:
            hit = rate_limit_hit(
                scope="api-token", key=str(token_id), limit=settings.API_RATE_LIMIT,
                window_s=settings.API_RATE_WINDOW_SECONDS,
            )  # fmt: skip
            if not hit.allowed:
                raise RateLimited(hit.retry_after)
        roles_remember(user, roles)
        if stale:
            ApiToken.objects.filter(pk=token_id).update(last_used_at=now)
        request.user = user
        if self.roles and not any(user_has_role(user, role) for role in self.roles):
            raise HttpError(403, f"This needs the {' or '.join(self.roles)} role.")
        return user


# The routers' `auth=`: who may call an operation at all.
researchers = TokenAuth(Role.RESEARCHER)
annotators = TokenAuth(Role.ANNOTATOR)


class RateLimited(HttpError):
    """A 429: the token used its API_RATE_LIMIT calls in this window; `Retry-After` says when
    the next window opens (config/api.py sets the header)."""

    def __init__(self, retry_after: int) -> None:
        window = settings.API_RATE_WINDOW_SECONDS
        super().__init__(
            429,
            f"Too many requests: this token may make {settings.API_RATE_LIMIT} calls every"
            f" {window} s (API_RATE_LIMIT); try again in {retry_after} s (Retry-After).",
        )
        self.retry_after = retry_after


class FieldError(Schema):
    field: str = Field(description="dotted path to the field, e.g. `queues.0`; `file` for a file")
    line: int | SkipJsonSchema[None] = Field(
        default=None, description="the line of the uploaded file the problem is on, if one"
    )
    message: str


class ShareOut(Schema):
    """k of n with its Wilson 95 % interval (core.stats.Share; low and high are null when
    n = 0). One schema for every app: OpenAPI components are shared by name."""

    k: int
    n: int
    value: float | None
    low: float | None
    high: float | None
    method: str

    @staticmethod
    def of(share: Share) -> ShareOut:
        return ShareOut(k=share.k, n=share.n, value=share.value, low=share.low,
                        high=share.high, method=METHOD)  # fmt: skip


class Problem(Schema):
    """Every 4xx body: what was refused, and each problem by field (empty when the refusal is
    about no one field)."""

    detail: str
    errors: list[FieldError]


class Body(BaseModel):
    """The base of every request schema, body, query or path: fields it does not name are
    refused (a 422), as the document says. A plain pydantic model, not ninja's Schema: that
    one reads its input through attribute access, which would validate a JSON body as Python
    objects (and strictly, refuse `"2024-01-01"` as a date)."""

    model_config = ConfigDict(extra="forbid")


class Refusal(HttpError):
    """A 4xx naming its problems: `errors` are `{"field", "line"?, "message"}` dicts."""

    def __init__(self, status: int, detail: str, errors: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__(status, detail)
        self.errors = list(errors)


def problem_body(detail: str, errors: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    return {"detail": detail, "errors": list(errors)}


# Ids as the database stores them (bigint): a bound in the document and on the server.
Id = DbId


def errors(*statuses: int) -> dict[int, Any]:
    """Documented error responses for an operation's `response=`: 400, 401, 413 (a body over
    the server's limit), 422 and 429 (the token's rate limit, with Retry-After) always, plus
    each of `statuses`; e.g. `response={200: QueueOut} | errors(403, 404)`."""
    return dict.fromkeys(sorted({400, 401, 413, 422, 429, *statuses}), Problem)


def api_user(request: HttpRequest) -> User:
    """The token's user (TokenAuth has run)."""
    user = request.auth  # type: ignore[attr-defined]
    assert isinstance(user, User)
    return user
