"""Text the database can store: the one check, applied where text enters.

PostgreSQL refuses NUL (U+0000) in text and JSON columns, and no database can store a lone
surrogate (U+D800–U+DFFF, which JSON's `\\ud800` escapes produce): psycopg cannot encode it.
SQLite would store the NUL, so without this check the same input is a 500 on one database and
a stored row on the other.

- User input is refused, naming the field: `text_refuse(value, field=…)` (any JSON-like
  value), or the pydantic types `StoredText` and `RequiredText` in schemas. The API refuses
  such text in any JSON body or query string before a view runs (config/api.py), Django's
  form CharFields refuse NUL themselves, and item payloads check every field (annotations
  kinds' `Payload`).
- Model output is replaced, not refused (the model cannot be asked again for the same text):
  `text_clean(text)` turns each such character into U+FFFD, the replacement character.
- Required text that is only whitespace is refused (`text_blank`, `RequiredText`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from typing_extensions import TypeAliasType

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class TextRefused(ValueError):
    """Text the database cannot store; `field` names where it was (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000), which cannot be stored"
    return "contains a lone surrogate (\\ud800–\\udfff), which is not valid text"


def text_refuse(value: Any, *, field: str = "") -> None:
    """Raise TextRefused if any string in `value` (a string, or JSON-like dicts and lists,
    keys included) cannot be stored; the error names the dotted path to it."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise TextRefused(field, problem)
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{field}.{key}" if field else str(key)
            text_refuse(key, field=path)
            text_refuse(item, field=path)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            text_refuse(item, field=f"{field}.{index}" if field else str(index))


def text_clean(text: str) -> str:
    """Model output made storable: each character the database cannot hold becomes U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def text_blank(text: str) -> bool:
    """True for "" and text of only whitespace: not an answer to a required field."""
    return not text.strip()


def _storable(text: str) -> str:
    problem = text_problem(text)
    if problem:
        raise ValueError(problem)
    return text


def _not_blank(text: str) -> str:
    if text_blank(text):
        raise ValueError("must not be empty or only whitespace")
    return text


# For pydantic schemas: text the database can store; and the same, required (not blank).
# The pattern is for the document only (API clients and the fuzzer read it); the validators
# are what the server runs. It names NUL only: a regex engine reading UTF-8 (the fuzzer's
# validator, jsonschema_rs) refuses a pattern with surrogates in it, and the fuzzer then
# ignores the pattern and sends NULs as valid data. Lone surrogates stay refused by the server.
_STORABLE_PATTERN = "^[^\\x00]*$"
StoredText = Annotated[
    str, AfterValidator(_storable), Field(json_schema_extra={"pattern": _STORABLE_PATTERN})
]
RequiredText = Annotated[
    str,
    AfterValidator(_storable),
    AfterValidator(_not_blank),
    Field(json_schema_extra={"pattern": "^[^\\x00]*[^\\x00\\s][^\\x00]*$"}),
]

# Any JSON value whose text (keys included) the database can store: what a record keeps as it
# was published (an NYU room's rules). Stated in the document too, so a client can tell.
StoredJson = TypeAliasType(
    "StoredJson",
    "StoredText | int | float | bool | None | list[StoredJson] | StoredObject",
)
# Keys must be storable too: the document says so (no key outside the storable pattern).
StoredObject = Annotated[
    dict[StoredText, StoredJson], Field(json_schema_extra={"additionalProperties": False})
]
