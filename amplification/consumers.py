from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from amplification.selectors import tree_for_user, tree_outline, tree_stats


def _live_fragment(tree_id: int, user: Any) -> str | None:
    tree = tree_for_user(user, tree_id)
    if tree is None:
        return None
    root, ordered = tree_outline(tree)
    stats = tree_stats(tree, [item.node for item in ordered])
    context = {"tree": tree, "root": root, "ordered": ordered, "stats": stats, "oob": True}
    return render_to_string("amplification/_live.html", context)


class TreeConsumer(AsyncWebsocketConsumer):
    """A tree's inspector: the outline and stats again whenever the tree changes.

    Transport only: access is the selector's, rendering the template's.
    """

    group: str

    async def connect(self) -> None:
        self.tree_id = int(self.scope["url_route"]["kwargs"]["tree_id"])
        fragment = await database_sync_to_async(_live_fragment)(self.tree_id, self.scope["user"])
        if fragment is None:
            await self.close()
            return
        self.group = f"tree-{self.tree_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.tree_changed({})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def tree_changed(self, event: dict[str, Any]) -> None:
        # Read after joining the group: a change the snapshot misses sends another event.
        fragment = await database_sync_to_async(_live_fragment)(self.tree_id, self.scope["user"])
        if fragment is not None:
            await self.send(fragment)
