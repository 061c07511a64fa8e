"""Sign-in throttling (django-axes): the backend every sign-in goes through first."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class SignInThrottleBackend(AxesStandaloneBackend):
    """Refuses a locked-out account or address before the password is checked.

    Every sign-in through a page (the login form, the admin's) passes its request and is
    counted. A call without one (a management command, the test client's `login()`) has no
    address to count or lock, so it is left to the next backend instead of raising."""

    def authenticate(  # type: ignore[override]
        self, request: HttpRequest | None, username: str | None = None,
        password: str | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
