from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest

from core.roles import Role, user_has_role


def roles(request: HttpRequest) -> dict[str, Any]:
    # The API handler has no session middleware, so its pages (/api/docs) have no user.
    user = getattr(request, "user", None) or AnonymousUser()
    return {
        "is_annotator": user_has_role(user, Role.ANNOTATOR),
        "is_researcher": user_has_role(user, Role.RESEARCHER),
        "is_admin": user_has_role(user, Role.ADMIN),
    }
