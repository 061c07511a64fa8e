"""Small shared value types."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

# Primary keys are bigints (DEFAULT_AUTO_FIELD): a larger number overflows in the driver.
MAX_ID = 2**63 - 1

# An id a client sends (API paths and bodies, export specs): 1 ≤ id ≤ MAX_ID.
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]


def _iso_date_text(value: Any) -> Any:
    # pydantic would read a number (even "1e-50") as a Unix time; a date here is YYYY-MM-DD.
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be a date written YYYY-MM-DD")
    if isinstance(value, int | float):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


# A calendar date a client sends (query strings, bodies): ISO 8601, YYYY-MM-DD only.
IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]


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
