"""Roles are Django groups. Every view checks them on the server; templates only decide what
to show. An admin may do everything a researcher or annotator may."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, PermissionsMixin, User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from core import sql


class Role(StrEnum):
    ANNOTATOR = "annotator"
    RESEARCHER = "researcher"
    ADMIN = "admin"


# Most powerful first: the role whose home page a user lands on.
ROLE_ORDER = (Role.ADMIN, Role.RESEARCHER, Role.ANNOTATOR)


_GROUP_NAMES = """
SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id
WHERE ug.user_id = %(user)s
"""


def role_columns(user_id: str) -> str:
    """SQL columns, one boolean per Role in order, for a SELECT that has the user's id as
    `user_id`: so a query that fetches a user can fetch their roles (see roles_remember)."""
    return ", ".join(
        "EXISTS (SELECT 1 FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id"
        f" WHERE ug.user_id = {user_id} AND g.name = '{role.value}')"
        for role in Role
    )


def roles_remember(user: User, flags: Sequence[Any]) -> None:
    """Cache the roles that role_columns fetched, so user_roles asks the database nothing."""
    names = {role for role, held in zip(Role, flags, strict=True) if held}
    if user.is_superuser:
        names.add(Role.ADMIN)
    setattr(user, "_arbiter_roles", frozenset(names))  # noqa: B010


def user_roles(user: AbstractBaseUser | AnonymousUser) -> frozenset[Role]:
    if not (user.is_authenticated and isinstance(user, PermissionsMixin)):
        return frozenset()
    # Cached on the request's user object: one query per request, however many checks.
    cached: frozenset[Role] | None = getattr(user, "_arbiter_roles", None)
    if cached is None:
        # Every request asks: a prepared statement, not an ORM build (see core/sql.py).
        names = {name for (name,) in sql.fetch_all(_GROUP_NAMES, {"user": user.pk})}
        if user.is_superuser:
            names.add(Role.ADMIN)
        cached = frozenset(Role(name) for name in names if name in Role._value2member_map_)
        setattr(user, "_arbiter_roles", cached)  # noqa: B010
    return cached


def signed_in_user(request: HttpRequest) -> User:
    """The request's user, in views that role_required has already guarded."""
    user = request.user
    assert isinstance(user, User), "call only behind role_required/login_required"
    return user


def user_has_role(user: AbstractBaseUser | AnonymousUser, role: Role) -> bool:
    roles = user_roles(user)
    return role in roles or Role.ADMIN in roles


def primary_role(user: AbstractBaseUser | AnonymousUser) -> Role | None:
    roles = user_roles(user)
    return next((role for role in ROLE_ORDER if role in roles), None)


View = TypeVar("View", bound=Callable[..., Any])


def role_required(*roles: Role) -> Callable[[View], View]:
    """Anonymous users go to the login page; signed-in users with none of the roles get 403."""
    message = f"This page is for the {' and '.join(roles)} role{'s' if len(roles) > 1 else ''}."

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not any(user_has_role(request.user, role) for role in roles):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
