"""The one JSON API (django-ninja): bearer-token auth, strict input, one error shape, and each
app's Router.

Apps contribute a `Router` in their own `api.py`, built from config/api_contract.py (auth, the
error shape, the body base); `_mount()` below mounts them, so the debate,
amplification and reward-model APIs share one OpenAPI document (`/api/docs`), one
authentication, and the fuzz test (tests/config/test_api_fuzz.py), which fuzzes every mounted
operation from that document.

The contract, kept here for every operation so no router can drift from it:
- Input is strict: what the document allows, the server accepts, and nothing else. Bodies are
  validated as JSON in pydantic's strict mode (`true` is not an id, `"5"` not a number, `0` not
  a date, `1.5` not an id), whatever model a router takes, its own apps' models included.
  `1.0` is the integer 1: in the document's JSON Schema (OpenAPI 3.1, draft 2020-12) it is.
  Path and query values arrive as text: each is read as the type the document declares for it
  (`5` an integer, `true`/`false` a boolean, anything else stays text) and then validated
  exactly as strictly, so `?limit=5` passes and `?limit=5.0` or `?paper_only=yes` do not.
  A query key the operation does not declare is refused too (ninja would drop it unread).
- Roles are checked before any input is read: a router (or an operation) takes `auth=` one of
  `researchers`, `annotators`, `TokenAuth(...)`, so a caller without the role gets a 403 even
  for a body that would not have parsed.
- Every 4xx body has one shape, `Problem`: `{"detail": str, "errors": [{"field", "line"?,
  "message"}]}`; `errors` names each problem by field (dotted path; `line` for a line of an
  uploaded file), empty when the refusal is about no one field. Messages are ours or the
  validators' own words, without pydantic's "Value error, " prefixes. Views refuse with
  `HttpError(status, detail)` or `Refusal(status, detail, errors)`.
- `errors(…)`: the documented error responses to merge into an operation's `response=`: 400,
  401, 413 and 422 always (a body that does not parse, a missing or bad token, a body over
  MAX_REQUEST_BODY_BYTES — listed only for operations that take a body —, a request that does
  not fit the schema), plus the statuses named (403, 404, 409, …), each with the `Problem` body.
- `Body` as the base of request bodies (unknown fields refused), taken by a view parameter named
  `body`; `StoredText` and `RequiredText` (core/text.py) for text fields; `Id` for every id in a
  path, query or body: 1 ≤ id < 2**63, as the database stores them.
- Text the database cannot store (NUL, lone surrogates) in any JSON body or query string is
  refused before a view runs: a 422 naming the field (core/text.py). Malformed JSON (NaN and
  Infinity included: they are not JSON) is a 400 saying where it broke.
"""

from __future__ import annotations

import json
import math
import re
from functools import partial
from json import JSONDecodeError
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.errors import ValidationError as RequestInvalid
from ninja.params.models import ParamModel
from ninja.parser import Parser

from annotations.services import AnnotationError
from config.api_contract import (
    RateLimited,
    TokenAuth,
    problem_body,
)
from core.text import TextRefused, text_refuse
from core.validation import problem_message


class TextCheckingParser(Parser):
    """JSON bodies and query strings, with text the database cannot store refused."""

    def parse_body(self, request: HttpRequest) -> Any:
        data = json.loads(request.body, parse_constant=_not_a_number)
        _refuse_text(data, "body")
        return data

    def parse_querydict(self, data: Any, list_fields: list[str], request: HttpRequest) -> Any:
        parsed = super().parse_querydict(data, list_fields, request)
        if data is request.GET:
            _refuse_text(parsed, "query")
        return parsed


class _NotJson(ValueError):
    pass


def _not_a_number(constant: str) -> Any:
    # Python's json reads NaN and Infinity; JSON has no such numbers.
    raise _NotJson(f"{constant} is not a JSON number")


def _refuse_text(data: Any, where: str) -> None:
    try:
        text_refuse(data)
    except TextRefused as refused:
        problem = {"loc": (where, *refused.field.split(".")), "msg": refused.message}
        raise RequestInvalid([problem | {"type": "unstorable_text"}]) from None


# --- strict input: how every operation reads its path, query and body ------------------------
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _json_types(node: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    """The JSON types a (sub)schema of the document allows."""
    if "$ref" in node:
        return _json_types(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    declared = node.get("type")
    found = {declared} if isinstance(declared, str) else set(declared or ())
    for keyword in ("anyOf", "oneOf", "allOf"):
        for branch in node.get(keyword, ()):
            found |= _json_types(branch, defs)
    values = [*node.get("enum", ()), *([node["const"]] if "const" in node else [])]
    for value in values:
        found.add({bool: "boolean", int: "integer", float: "number"}.get(type(value), "string"))
    return found


def _wire_types(model: type[ParamModel]) -> dict[str, set[str]]:
    """Each path or query key of a ninja parameter model: the JSON types the document gives it."""
    cached = model.__dict__.get("_arbiter_wire_types")
    if cached is None:
        schema = model.model_json_schema()
        defs = schema.get("$defs", {})
        cached = {}
        for key, path in model.__ninja_flatten_map__.items():  # type: ignore[attr-defined]
            node = schema
            for part in path:
                while "$ref" in node:
                    node = defs[node["$ref"].rsplit("/", 1)[-1]]
                node = node["properties"][part]
            cached[key] = _json_types(node, defs)
        model._arbiter_wire_types = cached  # type: ignore[attr-defined]
    return cached


def _from_text(text: Any, types: set[str]) -> Any:
    """A path or query value read as the type the document declares for it, if it is written
    as one (`5` for an integer, `true`/`false` for a boolean); otherwise the text, which the
    strict validation then refuses unless the field takes text."""
    if isinstance(text, list):
        return [_from_text(item, types) for item in text]
    if not isinstance(text, str):
        return text
    if "integer" in types and _INTEGER.fullmatch(text):
        return int(text)
    if "number" in types and _NUMBER.fullmatch(text) and math.isfinite(float(text)):
        return float(text)
    if "boolean" in types and text in ("true", "false"):
        return text == "true"
    return text


def _resolve_strictly(
    cls: type[ParamModel], request: HttpRequest, api: NinjaAPI, path_params: dict[str, Any]
) -> ParamModel:
    """ninja's ParamModel.resolve, validating as JSON in strict mode (see the module's doc)."""
    data = cls.get_request_data(request, api, path_params)
    if data is None:
        return cls()
    source = cls.__ninja_param_source__
    if source in ("path", "query"):
        types = _wire_types(cls)
        if source == "query":
            unknown = sorted(set(data) - set(types))
            if unknown:
                problem = {"msg": "not a parameter of this operation", "type": "extra_forbidden"}
                raise RequestInvalid([problem | {"loc": ("query", key)} for key in unknown])
        data = {key: _from_text(value, types.get(key, set())) for key, value in data.items()}
    else:
        data = _whole_floats_as_integers(data)
    data = cls._map_data_paths(data)
    return cls.model_validate_json(json.dumps(data), strict=True, context={"request": request})


def _whole_floats_as_integers(value: Any) -> Any:
    # In the document's JSON Schema (OpenAPI 3.1: draft 2020-12) `1.0` is the integer 1, so
    # an integer field takes it (and strict pydantic would not); `1.5` stays a number.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_floats_as_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_floats_as_integers(item) for item in value]
    return value


def _strict(model: type[ParamModel]) -> type[ParamModel]:
    if model.__ninja_param_source__ not in ("path", "query", "body"):
        return model  # a multipart upload: its file is read by the view
    return type(model.__name__, (model,), {"resolve": classmethod(_resolve_strictly)})


def _not_allowed(methods: set[str]) -> HttpResponse:
    allowed = ", ".join(sorted(methods))
    body = problem_body(f"This path takes {allowed}.")
    return JsonResponse(body, status=405, headers={"Allow": allowed})


class ArbiterAPI(NinjaAPI):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for error, handler in _HANDLERS.items():
            self.add_exception_handler(error, handler)

    def _get_bound_routers(self) -> Any:
        """Every operation reads its input strictly; a method a path does not take is a 405
        with a Problem body. Applied once, when the routers are bound to this API."""
        binding = self._bound_routers_cache is None
        routers = super()._get_bound_routers()
        if binding:
            for router in routers:
                for view in router.path_operations.values():
                    methods = {method for op in view.operations for method in op.methods}
                    view._not_allowed = partial(_not_allowed, methods)  # type: ignore[method-assign]
                    for operation in view.operations:
                        operation.models = [_strict(model) for model in operation.models]
        return routers

    def get_openapi_schema(self, **kwargs: Any) -> Any:
        """The document, with 413 listed only where it can happen: `errors()` adds it to every
        operation, but only one that reads a request body can get a body over the limit."""
        schema = super().get_openapi_schema(**kwargs)
        for operations in schema["paths"].values():
            for operation in operations.values():
                if "requestBody" not in operation:
                    operation["responses"].pop(413, None)
                limited = operation["responses"].get(429)
                if limited is not None:
                    limited["headers"] = {"Retry-After": _RETRY_AFTER}
        return schema


_RETRY_AFTER = {
    "description": "seconds until the token's next rate-limit window (API_RATE_LIMIT calls per"
    " API_RATE_WINDOW_SECONDS)",
    "schema": {"type": "integer", "minimum": 1},
}


# --- errors: every one a Problem --------------------------------------------------------------
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


def _respond(request: HttpRequest, status: int, body: dict[str, Any]) -> HttpResponse:
    return JsonResponse(body, status=status)


def _request_invalid(request: HttpRequest, error: RequestInvalid) -> HttpResponse:
    problems = [
        {"field": _field(tuple(problem.get("loc", ()))), "message": problem_message(problem)}
        for problem in error.errors
    ]
    detail = "; ".join(f"{problem['field']}: {problem['message']}" for problem in problems)
    return _respond(request, 422, problem_body(detail, problems))


def _rate_limited(request: HttpRequest, error: RateLimited) -> HttpResponse:
    response = _respond(request, 429, problem_body(str(error)))
    response["Retry-After"] = str(error.retry_after)
    return response


def _http_error(request: HttpRequest, error: HttpError) -> HttpResponse:
    # ninja wraps whatever the body parser raises in a 400 "Cannot parse request body"; the
    # cause says which: text refused (a 422 naming the field) or JSON that does not parse.
    cause = error.__cause__
    if isinstance(cause, RequestInvalid):
        return _request_invalid(request, cause)
    if isinstance(cause, JSONDecodeError):
        detail = f"body: not valid JSON ({cause.msg} at line {cause.lineno} column {cause.colno})"
        return _respond(request, 400, problem_body(detail))
    if isinstance(cause, _NotJson):
        return _respond(request, 400, problem_body(f"body: not valid JSON ({cause})"))
    if isinstance(cause, UnicodeDecodeError):
        return _respond(request, 400, problem_body("body: not UTF-8 text"))
    return _respond(
        request, error.status_code, problem_body(str(error), getattr(error, "errors", ()))
    )


def _not_found(request: HttpRequest, error: Http404) -> HttpResponse:
    return _respond(request, 404, problem_body("Not found."))


def _body_too_big(request: HttpRequest, error: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    detail = f"body: larger than this server's limit of {limit:,} bytes (MAX_REQUEST_BODY_BYTES)"
    return _respond(request, 413, problem_body(detail))


def _annotation_error(request: HttpRequest, error: AnnotationError) -> HttpResponse:
    return _respond(request, error.status, problem_body(error.message))


def _validation_error(request: HttpRequest, error: ValidationError) -> HttpResponse:
    return _respond(request, 400, problem_body(" ".join(error.messages)))


_HANDLERS: dict[type[Exception], Any] = {
    RateLimited: _rate_limited,
    RequestInvalid: _request_invalid,
    HttpError: _http_error,
    Http404: _not_found,
    RequestDataTooBig: _body_too_big,
    AnnotationError: _annotation_error,
    ValidationError: _validation_error,
}


api = ArbiterAPI(
    title="Arbiter API",
    version="1",
    description="Rating queues: claim, label, undo; import items; export labels. Debates,"
    " amplification trees and reward models. Every 4xx answers a Problem body.",
    auth=TokenAuth(),
    urls_namespace="api",
    parser=TextCheckingParser(),
)


def _mount() -> None:
    # Imported here: each app's api module imports Problem and the auth objects from this one.
    from annotations.api import exports, queues
    from debate.api import router as debates
    from experiments.api import experiments_router
    from llm.api import training_runs_router
    from rewards.api import best_of_n_router, policy_runs_router, reward_models_router

    api.add_router("/queues", queues)
    api.add_router("/exports", exports)
    api.add_router("/debates", debates)
    api.add_router("/reward-models", reward_models_router)
    api.add_router("/experiments", experiments_router)
    api.add_router("/trees", "amplification.api.trees")
    api.add_router("/webhooks", "core.api.webhooks_router")
    api.add_router("/ai-feedback", "feedback.api.router")
    api.add_router("/training-runs", training_runs_router)
    api.add_router("/policy-runs", policy_runs_router)
    api.add_router("/best-of-n", best_of_n_router)


_mount()
