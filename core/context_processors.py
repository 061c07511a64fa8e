from typing import Any

from django.http import HttpRequest

from core.roles import Role, user_has_role


def roles(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    return {
        "is_annotator": user_has_role(user, Role.ANNOTATOR),
        "is_researcher": user_has_role(user, Role.RESEARCHER),
        "is_admin": user_has_role(user, Role.ADMIN),
    }
