"""API tokens: only a digest is stored."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from annotations.models import (
    ApiToken,
)
from annotations.services.errors import (
    TokenNotFound,
)


def api_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, user: User, name: str) -> str:
    """Make a bearer token for the API; the token itself is returned once and never stored.
    A name the user already gave another token is a ValidationError (a unique constraint,
    so two requests at once cannot both take it)."""
    token = "arb_" + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            ApiToken.objects.create(user=user, name=name, digest=api_token_digest(token))
    except IntegrityError:
        raise ValidationError(
            f"You already have a token named “{name}”. Pick another name, or revoke that one.",
            code="duplicate_name",
        ) from None
    return token


def api_token_revoke(*, user: User, token_id: int) -> None:
    """Delete one of `user`'s API tokens; it stops authenticating at once. Someone else's
    token, or one already gone, is TokenNotFound: the same answer, so ids reveal nothing."""
    deleted, _ = ApiToken.objects.filter(pk=token_id, user=user).delete()
    if not deleted:
        raise TokenNotFound("No such token among yours.")
