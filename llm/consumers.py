from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from core.streams import StreamCursor
from llm.models import GenerationState
from llm.selectors import trial_for_user
from llm.trial_worker import trial_group_name


class TrialConsumer(AsyncWebsocketConsumer):
    """Streams one "Try it" completion to the researcher who started it. Transport only:
    a snapshot from the database, then the live deltas it does not yet have."""

    group: str

    async def connect(self) -> None:
        trial = await database_sync_to_async(trial_for_user)(
            self.scope["user"], self.scope["url_route"]["kwargs"]["trial_id"]
        )
        if trial is None:
            await self.close()
            return
        self.trial_id = trial.pk
        self.cursor = StreamCursor()
        self.group = trial_group_name(trial.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # Read after joining: whatever the snapshot lacks arrives as a delta.
        trial = await database_sync_to_async(trial_for_user)(self.scope["user"], trial.pk)
        assert trial is not None
        self.cursor.from_snapshot(str(trial.pk), trial.text)
        await self.send(render_to_string("llm/_trial.html", {"trial": trial, "oob": True}))

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def stream_delta(self, event: dict[str, Any]) -> None:
        fresh = self.cursor.unseen(event["stream"], event["offset"], event["text"])
        if fresh:
            context = {"trial_id": self.trial_id, "text": fresh}
            await self.send(render_to_string("llm/_trial.html#delta", context))
        if "progress" in event:
            state = GenerationState.from_progress(f"trial-{self.trial_id}", event["progress"])
            await self.send(render_to_string("llm/_state.html", {"state": state, "oob": True}))

    async def trial_changed(self, event: dict[str, Any]) -> None:
        trial = await database_sync_to_async(trial_for_user)(self.scope["user"], self.trial_id)
        if trial is not None:
            context = {"trial": trial, "oob": True}
            await self.send(render_to_string("llm/_trial.html#status", context))

    async def stream_end(self, event: dict[str, Any]) -> None:
        trial = await database_sync_to_async(trial_for_user)(self.scope["user"], self.trial_id)
        if trial is not None:
            await self.send(render_to_string("llm/_trial.html", {"trial": trial, "oob": True}))
