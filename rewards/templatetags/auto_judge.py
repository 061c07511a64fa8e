"""`{% debate_auto_judge debate_id as auto_judge %}` for templates/rewards/_debate_auto_judge.html,
the researcher's automatic-judge block on a debate page.

A tag rather than view context so that the debate page includes the block with one line and
the debate app need not read rewards. It answers only a signed-in researcher (or admin)
rendering with a request: a render without one (a websocket push) or for anyone else gets
None, and the block renders nothing.
"""

from __future__ import annotations

from typing import Any

from django import template

from core.roles import Role, user_has_role
from rewards.auto_judge import AutoJudge
from rewards.auto_judge import debate_auto_judge as auto_judge_for

register = template.Library()


@register.simple_tag(takes_context=True)
def debate_auto_judge(context: dict[str, Any], debate_id: int) -> AutoJudge | None:
    request = context.get("request")
    if request is None or not user_has_role(request.user, Role.RESEARCHER):
        return None
    return auto_judge_for(debate_id=debate_id)
