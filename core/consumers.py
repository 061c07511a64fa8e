from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from core.services import user_group_name


class NotificationsConsumer(AsyncJsonWebsocketConsumer):
    """A signed-in user's own events (job progress, finished exports). Transport only."""

    group: str

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close()
            return
        self.group = user_group_name(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def notify(self, event: dict[str, Any]) -> None:
        await self.send_json({"kind": event["kind"], "data": event["data"]})
