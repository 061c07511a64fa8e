"""Small shared value types."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo

# Primary keys are bigints (DEFAULT_AUTO_FIELD): a larger number overflows in the driver.
MAX_ID = 2**63 - 1

# An id a client sends (API paths and bodies, export specs): 1 ≤ id ≤ MAX_ID.
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]


_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_DATE_MESSAGE = "must be a date written YYYY-MM-DD"
_DATETIME_MESSAGE = "must be a date and time written YYYY-MM-DDTHH:MM:SS with its UTC offset"


def _iso_date_text(value: Any) -> Any:
    # pydantic would read a number (even "1e-50") as a Unix time; a date here is YYYY-MM-DD.
    # Parsed here, so that strict validation (the API's) gets a date, not text.
    if isinstance(value, int | float):
        raise ValueError(_DATE_MESSAGE)
    if isinstance(value, str):
        if not _DATE_TEXT.fullmatch(value):
            raise ValueError(_DATE_MESSAGE)
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{_DATE_MESSAGE}, a day of the calendar") from None
    return value


# A calendar date a client sends (query strings, bodies): ISO 8601, YYYY-MM-DD only.
IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]


def iso_datetime_text(value: Any, info: ValidationInfo) -> Any:
    """Read from JSON (the API), a date and time is RFC 3339 text, as the document's
    `format: date-time` says: pydantic alone would take "1700000000" as a Unix time and a
    time with no offset as naive. Python callers (forms, the command line, stored specs) pass
    datetimes, or text this project wrote itself, and keep pydantic's reading."""
    if info.mode != "json":
        return value
    if not (isinstance(value, str) and _DATETIME_TEXT.fullmatch(value)):
        raise ValueError(_DATETIME_MESSAGE)
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValueError(f"{_DATETIME_MESSAGE}, a real time of a real day") from None


# A date and time a client sends in a body: RFC 3339, with its offset.
IsoDateTime = Annotated[datetime, BeforeValidator(iso_datetime_text)]


class IdConverter:
    """`<id:pk>` in a page's URL: digits that fit a database id. A longer number matches no
    URL (a 404) instead of overflowing in the database driver (a 500). Registered as "id" by
    CoreConfig.ready()."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValueError(value)  # Django treats it as no match
        return number

    def to_url(self, value: int) -> str:
        return str(value)
