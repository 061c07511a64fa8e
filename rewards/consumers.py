from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from core.roles import Role, user_has_role
from rewards.models import RewardModel
from rewards.services import reward_model_group


def _may_watch(user: Any, reward_model_id: int) -> bool:
    return (
        user.is_authenticated
        and user_has_role(user, Role.RESEARCHER)
        and RewardModel.objects.filter(pk=reward_model_id).exists()
    )


class TrainingConsumer(AsyncWebsocketConsumer):
    """A reward model's training progress (step, loss, status) as JSON. Transport only:
    researchers and admins; the worker publishes through rewards.services."""

    group: str

    async def connect(self) -> None:
        reward_model_id = int(self.scope["url_route"]["kwargs"]["reward_model_id"])
        if not await database_sync_to_async(_may_watch)(self.scope["user"], reward_model_id):
            await self.close()
            return
        self.group = reward_model_group(reward_model_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def training_progress(self, event: dict[str, Any]) -> None:
        await self.send(json.dumps({k: v for k, v in event.items() if k != "type"}))
