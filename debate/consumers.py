from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from django.utils.html import escape

from core.streams import StreamCursor
from debate.events import debate_group_name
from debate.forms import judge_forms
from debate.selectors import DebateView, Viewer, debate_view, debate_viewer
from llm.models import GenerationState


class DebateConsumer(AsyncWebsocketConsumer):
    """A debate's live page: a snapshot from the database, then tokens as they come.

    The judge's snapshots are rendered from the judge's view, which never holds the passage
    or the correct answer before judging. Transport only: rendering lives in templates.
    """

    viewer: Viewer
    group: str

    async def connect(self) -> None:
        self.debate_id = int(self.scope["url_route"]["kwargs"]["debate_id"])
        viewer = await database_sync_to_async(debate_viewer)(self.scope["user"], self.debate_id)
        if viewer is None:
            await self.close()
            return
        self.viewer = viewer
        self.group = debate_group_name(self.debate_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_snapshot()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def send_snapshot(self) -> None:
        # Read after joining the group: anything the snapshot lacks arrives as a delta.
        view: DebateView = await database_sync_to_async(debate_view)(self.debate_id, self.viewer)
        self.cursor = StreamCursor()
        for round_view in view.rounds:
            for speech in round_view.speeches:
                self.cursor.from_snapshot(speech.stream_key, speech.text)
        context = {"view": view, "oob": True, **judge_forms()}
        await self.send(render_to_string("debate/debate.html#live", context))

    async def stream_delta(self, event: dict[str, Any]) -> None:
        fresh = self.cursor.unseen(event["stream"], event["offset"], event["text"])
        if fresh:
            await self.send(
                f'<span id="{event["stream"]}-text" hx-swap-oob="beforeend">{escape(fresh)}</span>'
            )
        if "progress" in event:
            state = GenerationState.from_progress(event["stream"], event["progress"])
            await self.send(render_to_string("llm/_state.html", {"state": state, "oob": True}))

    async def debate_changed(self, event: dict[str, Any]) -> None:
        await self.send_snapshot()
