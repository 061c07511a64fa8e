"""Streaming model text to browsers, without losing or repeating a character.

The worker saves a stream's full text, then publishes the new part with its offset. A socket
joins the group first and reads the saved text second, so every character is either in the
snapshot or in a delta it will receive; offsets let it drop what the snapshot already had.
That is what lets a browser that reconnects mid-speech show everything so far, then go on live.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer

# Coalesce deltas that arrive faster than this into one save + one message.
FLUSH_INTERVAL_S = 0.03


# A delta carries the generation's progress (tokens so far, seconds since the publisher was
# made) at most this often: enough for a live tokens/s figure, not a render per token.
PROGRESS_INTERVAL_S = 1.0


@dataclass
class TextStreamPublisher:
    """Worker side of one stream: `feed` deltas, `close` at the end. Sync; used in tasks.
    Make it when the model starts generating: progress counts time from then."""

    group: str
    stream: str
    # Called with the text so far and the tokens generated so far.
    save: Callable[[str, int], None]
    text: str = ""
    tokens: int = 0
    _published: int = field(default=0, init=False)
    _last_flush: float = field(default=0.0, init=False)
    _last_progress: float = field(default=0.0, init=False)
    _started: float = field(default_factory=time.monotonic, init=False)

    def feed(self, delta: str, tokens: int = 0) -> None:
        self.text += delta
        self.tokens += tokens
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        now = time.monotonic()
        progress_due = now - self._last_progress >= PROGRESS_INTERVAL_S
        # Tokens with no text (a stream that publishes progress only) still report progress.
        if self._published == len(self.text) and not (progress_due and self.tokens):
            return
        self.save(self.text, self.tokens)
        event: dict[str, Any] = {
            "type": "stream.delta",
            "stream": self.stream,
            "offset": self._published,
            "text": self.text[self._published :],
        }
        if progress_due:
            event["progress"] = {"tokens": self.tokens, "elapsed_s": round(now - self._started, 2)}
            self._last_progress = now
        stream_send(self.group, event)
        self._published = len(self.text)
        self._last_flush = now


SEND_TIMEOUT_S = 10.0


class _SendLoop:
    """One event loop per process, in a thread, for channel-layer sends from sync code.

    `async_to_sync` per send starts a thread and an event loop, and channels-redis opens a
    connection pool per loop: 2-4 ms a call, paid on every token inside the decode loop. A
    loop that lives as long as the process sends in ~0.1 ms over one pool. Re-created after a
    fork (Celery's prefork pool), since threads do not survive one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        future.result(timeout=SEND_TIMEOUT_S)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="channel-sends", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_send_loop = _SendLoop()


def stream_send(group: str, event: dict[str, Any]) -> None:
    """group_send from sync code (workers, services after commit), in order, waiting for it."""
    layer = get_channel_layer()
    assert layer is not None
    _send_loop.run(layer.group_send(group, event))


@dataclass
class StreamCursor:
    """Socket side: how much of each stream this socket has already sent to its browser."""

    sent: dict[str, int] = field(default_factory=dict)

    def from_snapshot(self, stream: str, text: str) -> None:
        self.sent[stream] = len(text)

    def unseen(self, stream: str, offset: int, text: str) -> str:
        """The part of a delta the browser does not have yet ('' if it has all of it)."""
        already = self.sent.get(stream, 0)
        end = offset + len(text)
        if end <= already:
            return ""
        # offset > already cannot happen: the snapshot was read after joining the group.
        fresh = text[max(0, already - offset) :]
        self.sent[stream] = end
        return fresh
