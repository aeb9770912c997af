"""Posting replies exactly once: every reply has a key; a key already posted is not posted again.

The key is derived from the task and the reply's position in that task's work, which is the
same when a task is resumed after a crash, so a resumed task skips what already went out.
"""

from __future__ import annotations

import logging

from engine.memory.records import ThreadRecord
from engine.models import PostedMessage, Reply, Voice
from engine.ports import Outbox

log = logging.getLogger(__name__)


class NoOutbox(Exception):
    pass


class Poster:
    def __init__(self, memory) -> None:
        self.memory = memory
        self.outboxes: dict[str, Outbox] = {}

    def register(self, platform: str, outbox: Outbox) -> None:
        self.outboxes[platform] = outbox

    def _outbox(self, platform: str) -> Outbox:
        try:
            return self.outboxes[platform]
        except KeyError:
            raise NoOutbox(f"no outbox registered for platform {platform!r}") from None

    async def post(
        self, reply: Reply, *, task_id: int | None, thread: ThreadRecord | None, check_earlier: bool = True
    ) -> PostedMessage:
        """Post once per key. Returns the (possibly earlier) posted message.

        Keys name what is posted (a turn, a root, a notice of one task), so only a task resumed
        after a restart can meet a key already posted: fresh work skips the lookup.
        """
        if reply.key and check_earlier:
            earlier = await self.memory.post_for_key(reply.key)
            if earlier is not None:
                return PostedMessage(message_id=earlier, thread=reply.thread or earlier)
        posted = await self._outbox(reply.platform).post(reply)
        if reply.key:
            await self.memory.record_post(
                reply.key,
                task_id=task_id,
                platform=reply.platform,
                workspace=reply.workspace,
                channel=reply.channel,
                thread=posted.thread or reply.thread,
                message_id=posted.message_id,
                persona=reply.voice.name,
                thread_id=thread.id if thread else None,
            )
        return posted

    async def working(self, platform: str, voice: Voice, channel: str, thread: str | None) -> None:
        """Best effort: a failed typing indicator must never fail the turn."""
        try:
            await self._outbox(platform).working(voice, channel, thread)
        except Exception:  # noqa: BLE001 - cosmetic
            log.debug("working indicator failed", exc_info=True)
