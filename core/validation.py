"""pydantic's validation problems in our words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Problems a validator raised itself: pydantic prefixes its message ("Value error, …",
# "Assertion failed, …"); the validator's own words are the message.
_RAISED = {"value_error", "assertion_error"}


def problem_message(problem: Mapping[str, Any]) -> str:
    """The message of one of pydantic's problems (an item of `ValidationError.errors()`),
    without the library's prefix."""
    error = (problem.get("ctx") or {}).get("error")
    if problem.get("type") in _RAISED and error is not None and str(error):
        return str(error)
    return str(problem.get("msg", ""))
