from django.contrib.auth import get_user_model
from django.db.models import Count

from core.roles import Role


def role_member_counts() -> dict[str, int]:
    """Active users per role, every role listed even when empty."""
    counts = dict.fromkeys(Role, 0)
    rows = (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=list(Role))
        .values_list("groups__name")
        .annotate(n=Count("pk", distinct=True))
    )
    for name, n in rows:
        counts[Role(name)] = n
    return {str(role): n for role, n in counts.items()}
