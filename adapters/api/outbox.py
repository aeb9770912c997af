"""The API's way out (`engine.ports.Outbox` for platform `"api"`): nothing is sent anywhere.
What a task produced is read back from the memory (its turns); posting only hands out message ids
(the first one of a thread is the id a follow-up names) and wakes whoever follows a task's events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from engine.models import PostedMessage, Reply, Voice

PLATFORM = "api"
WORKSPACE = "api"


class ApiOutbox:
    def __init__(self) -> None:
        self._listeners: set[asyncio.Event] = set()

    async def post(self, reply: Reply, replace: str | None = None, resume: PostedMessage | None = None) -> PostedMessage:
        if resume is not None:
            return resume
        message_id = replace or f"m-{uuid.uuid4().hex[:16]}"
        self.changed()
        return PostedMessage(message_id=message_id, thread=reply.thread or message_id)

    async def working(self, voice: Voice, channel: str, thread: str | None, key: str = "") -> str | None:
        return None  # nothing lasting to replace: a client sees the status instead

    async def find_posted(self, channel: str, thread: str | None, key: str) -> PostedMessage | None:
        return None  # nothing left the process: a resumed task posts again, from its stored turns

    def changed(self) -> None:
        """Something was posted: every follower looks at the memory again."""
        for event in self._listeners:
            event.set()

    @contextmanager
    def listen(self) -> Iterator[asyncio.Event]:
        """An event set at each post (clear it, then look again), while the `with` lasts."""
        event = asyncio.Event()
        self._listeners.add(event)
        try:
            yield event
        finally:
            self._listeners.discard(event)
