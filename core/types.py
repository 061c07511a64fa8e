"""Small shared value types."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Primary keys are bigints (DEFAULT_AUTO_FIELD): a larger number overflows in the driver.
MAX_ID = 2**63 - 1

# An id a client sends (API paths and bodies, export specs): 1 ≤ id ≤ MAX_ID.
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]
