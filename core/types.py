"""Small shared value types."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Primary keys are bigints (DEFAULT_AUTO_FIELD): a larger number overflows in the driver.
MAX_ID = 2**63 - 1

# An id a client sends (API paths and bodies, export specs): 1 ≤ id ≤ MAX_ID.
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]


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
