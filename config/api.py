"""The one JSON API (django-ninja): bearer-token auth, JSON errors, and each app's Router.

Every error is a 4xx with a JSON body `{"detail": …}`. Apps contribute a `Router` in their
own `api.py`; `_mount()` below mounts them, so the debate, amplification and reward-model APIs
share one OpenAPI document (`/api/docs`), one authentication, and the fuzz test
(tests/config/test_api_fuzz.py), which fuzzes every mounted operation from that document.

What a router should use from here, so its document matches what the server does:
- `Body` as the base of request bodies (unknown fields refused), taken by a view parameter
  named `body`; `StoredText` and `RequiredText` (core/text.py) for their text fields.
- `Id` for every id in a path, query or body: 1 ≤ id < 2**63, as the database stores them
  (an id past 64 bits would otherwise overflow in the driver: a 500).
- `errors(…)`: the documented error responses to merge into an operation's `response=`:
  400, 401, 413 and 422 always (a body that does not parse, a missing or bad token, a body
  over MAX_REQUEST_BODY_BYTES — listed only for operations that take a body —, a request that
  does not fit the schema), plus the statuses
  named (403, 404, 409, …), each with the `Detail` body (422: `Invalid`, which names each
  field).
- Text the database cannot store (NUL, lone surrogates) in any JSON body or query string is
  refused here before a view runs: a 422 naming the field (core/text.py). Malformed JSON is a
  400 saying where it broke.
"""

from __future__ import annotations

from datetime import timedelta
from json import JSONDecodeError
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import NinjaAPI, Schema
from ninja.errors import HttpError
from ninja.errors import ValidationError as RequestInvalid
from ninja.parser import Parser
from ninja.security import HttpBearer
from pydantic import ConfigDict, Field

from annotations.models import ApiToken
from annotations.services import AnnotationError, api_token_digest
from core import sql
from core.roles import Role, role_columns, roles_remember, user_has_role
from core.text import TextRefused, text_refuse
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


class Body(Schema):
    """A request body: fields it does not name are refused (a 422), as the document says."""

    model_config = ConfigDict(extra="forbid")


class FieldProblem(Schema):
    field: str = Field(description="dotted path to the field, e.g. `queues.0`")
    message: str


class Invalid(Detail):
    """A request that does not fit the operation's schema (422): each problem by field."""

    errors: list[FieldProblem]


# Ids as the database stores them (bigint): a bound in the document and on the server.
Id = DbId

_ERROR_TEXT = {
    400: "Malformed request",
    401: "No token, or not a valid one",
    403: "Your role does not allow this",
    404: "No such object among yours",
    409: "Refused by the object's current state",
    410: "Gone",
    413: "Too large",
}


def errors(*statuses: int) -> dict[int, Any]:
    """Documented error responses for an operation's `response=`: 400, 401, 413 (a body over
    the server's limit) and 422 always, plus each of `statuses`; e.g.
    `response={200: QueueOut} | errors(403, 404)`."""
    documented: dict[int, Any] = {400: Detail, 401: Detail, 413: Detail, 422: Invalid}
    documented |= dict.fromkeys(statuses, Detail)
    return dict(sorted(documented.items()))


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


def query_known(request: HttpRequest, query: type[Schema]) -> None:
    """A 422 naming each query key that `query` does not declare (ninja would drop it unread)."""
    unknown = sorted(set(request.GET) - set(query.model_fields))
    if unknown:
        problem = {"msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
        raise RequestInvalid([problem | {"loc": ("query", key)} for key in unknown])


class TextCheckingParser(Parser):
    """JSON bodies and query strings, with text the database cannot store refused."""

    def parse_body(self, request: HttpRequest) -> Any:
        data = super().parse_body(request)
        _refuse_text(data, "body")
        return data

    def parse_querydict(self, data: Any, list_fields: list[str], request: HttpRequest) -> Any:
        parsed = super().parse_querydict(data, list_fields, request)
        if data is request.GET:
            _refuse_text(parsed, "query")
        return parsed


def _refuse_text(data: Any, where: str) -> None:
    try:
        text_refuse(data)
    except TextRefused as refused:
        problem = {"loc": (where, *refused.field.split(".")), "msg": refused.message}
        raise RequestInvalid([problem | {"type": "unstorable_text"}]) from None


class ArbiterAPI(NinjaAPI):
    def get_openapi_schema(self, **kwargs: Any) -> Any:
        """The document, with 413 listed only where it can happen: `errors()` adds it to every
        operation, but only one that reads a request body can get a body over the limit."""
        schema = super().get_openapi_schema(**kwargs)
        for operations in schema["paths"].values():
            for operation in operations.values():
                if "requestBody" not in operation:
                    operation["responses"].pop(413, None)
        return schema


api = ArbiterAPI(
    title="Arbiter API",
    version="1",
    description="Rating queues: claim, label, undo; import items; export labels.",
    auth=TokenAuth(),
    urls_namespace="api",
    parser=TextCheckingParser(),
)


def _field(loc: tuple[Any, ...]) -> str:
    # ninja's locations start with where the value came from, then (for a body) the view's
    # parameter name: neither is part of the field a client sent.
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "query", "path", "form", "file", "header", "cookie"):
        source, parts = parts[0], parts[1:]
        if source == "body" and len(parts) > 1 and parts[0] in _BODY_PARAMS:
            parts = parts[1:]
    return ".".join(parts) or "body"


# A view's body parameter name is not part of what the client sent: name it `body` (the
# exports router's is `spec`) and 422 field paths start at the body's own fields.
_BODY_PARAMS = {"body", "spec"}


@api.exception_handler(RequestInvalid)
def _request_invalid(request: HttpRequest, error: RequestInvalid) -> HttpResponse:
    problems = [
        {"field": _field(tuple(problem.get("loc", ()))), "message": str(problem.get("msg", ""))}
        for problem in error.errors
    ]
    detail = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
    return api.create_response(request, {"detail": detail, "errors": problems}, status=422)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, error: HttpError) -> HttpResponse:
    # ninja wraps whatever the body parser raises in a 400 "Cannot parse request body"; the
    # cause says which: text refused (a 422 naming the field) or JSON that does not parse.
    cause = error.__cause__
    if isinstance(cause, RequestInvalid):
        return _request_invalid(request, cause)
    if isinstance(cause, JSONDecodeError):
        detail = f"body: not valid JSON ({cause.msg} at line {cause.lineno} column {cause.colno})"
        return api.create_response(request, {"detail": detail}, status=400)
    if isinstance(cause, UnicodeDecodeError):
        return api.create_response(request, {"detail": "body: not UTF-8 text"}, status=400)
    return api.create_response(request, {"detail": str(error)}, status=error.status_code)


@api.exception_handler(RequestDataTooBig)
def _body_too_big(request: HttpRequest, error: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    detail = f"body: larger than this server's limit of {limit:,} bytes (MAX_REQUEST_BODY_BYTES)"
    return api.create_response(request, {"detail": detail}, status=413)


@api.exception_handler(AnnotationError)
def _annotation_error(request: HttpRequest, error: AnnotationError) -> HttpResponse:
    return api.create_response(request, {"detail": error.message}, status=error.status)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, error: ValidationError) -> HttpResponse:
    return api.create_response(request, {"detail": " ".join(error.messages)}, status=400)


def _mount() -> None:
    # Imported here: each app's api module imports Detail and api_require from this one.
    from annotations.api import exports, queues
    from debate.api import router as debates
    from rewards.api import reward_models_router

    api.add_router("/queues", queues)
    api.add_router("/exports", exports)
    api.add_router("/debates", debates)
    api.add_router("/reward-models", reward_models_router)
    api.add_router("/trees", "amplification.api.trees")


_mount()
