"""Posting replies exactly once, and never leaving a "thinking" placeholder behind.

Every reply has a key derived from the task and the reply's position in that task's work, the
same when a task is resumed after a crash. Three records, all in SQLite, make a crash at any
moment harmless:

- an *intent* (the key) is written before the post goes out; a resumed task that finds an
  intent but no post asks the platform whether the message is there (`Outbox.find_posted`:
  each message carries its key) before posting again;
- the *post* (key → message id) is written once the platform answers; a key already posted is
  not posted again;
- a *placeholder* row is written when a "thinking" message is shown, and dropped once the
  persona's next post in that thread has replaced it, so a restarted process still knows
  which message to replace (or, for a task that will not resume, to turn into a notice); its
  key names the task's step, so a resumed task finds one shown just before the crash.
"""

from __future__ import annotations

import logging

from engine.crashpoints import crash_point
from engine.memory.records import Placeholder, ThreadRecord
from engine.models import PostedMessage, Reply, Voice
from engine.observe import Observers
from engine.ports import Outbox

log = logging.getLogger(__name__)


class NoOutbox(Exception):
    pass


class Poster:
    def __init__(self, memory, observers: Observers | None = None) -> None:
        self.memory = memory
        self.observers = observers or Observers()
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
        after a restart can meet a key already posted: fresh work skips the lookups.
        """
        outbox = self._outbox(reply.platform)
        waiting = await self._placeholder(reply)
        if reply.key and check_earlier:
            earlier = await self._earlier(outbox, reply, task_id, thread)
            if earlier is not None:
                if waiting is not None and waiting.message_id == earlier.message_id:
                    await self.memory.drop_placeholder(waiting.key)  # it became this post
                return earlier
        replace = await self._resolve(outbox, waiting) if waiting is not None else None
        if reply.key:
            await self.memory.record_intent(
                reply.key, task_id=task_id, platform=reply.platform, workspace=reply.workspace,
                channel=reply.channel, thread=reply.thread,
            )
        try:
            posted = await outbox.post(reply, replace=replace)
        except Exception:
            self.observers.post(reply.platform, False)
            raise
        self.observers.post(reply.platform, True)
        crash_point("posted")
        if reply.key:  # settles the intent and the replaced placeholder too (a trigger)
            await self._record(reply, posted, task_id, thread)
        if waiting is not None and (not reply.key or posted.message_id != replace):
            await self.memory.drop_placeholder(waiting.key)  # not replaced: it was gone
        return posted

    async def working(self, placeholder: Placeholder, voice: Voice, *, resumed: bool = False) -> None:
        """Show that the persona is working, at most one placeholder per persona and thread.

        The placeholder's key names the task's step, so a task resumed after a crash between
        showing it and recording it finds it on the platform (rather than showing a second).
        Best effort: a failed indicator must never fail the turn."""
        try:
            outbox = self._outbox(placeholder.platform)
            shown = await self.memory.placeholder_for(
                placeholder.platform, placeholder.workspace, placeholder.channel, placeholder.thread, placeholder.persona
            )
            if shown is not None and await self._resolve(outbox, shown) is not None:
                return  # already showing (perhaps since before a restart): the next post replaces it
            if resumed:
                found = await outbox.find_posted(placeholder.channel, placeholder.thread, placeholder.key)
                if found is not None:
                    await self.memory.record_placeholder(placeholder.model_copy(update={"message_id": found.message_id}))
                    return
            message_id = await outbox.working(voice, placeholder.channel, placeholder.thread, placeholder.key)
            crash_point("placeholder_posted")
            if message_id is not None:  # None: nothing lasting was shown (a printed line)
                await self.memory.record_placeholder(placeholder.model_copy(update={"message_id": message_id}))
        except NoOutbox:
            raise
        except Exception:  # noqa: BLE001 - cosmetic
            log.debug("working indicator failed", exc_info=True)

    # --- internals ----------------------------------------------------------------------------

    async def _placeholder(self, reply: Reply) -> Placeholder | None:
        if reply.thread is None:
            return None  # placeholders live in threads; a root post opens one
        return await self.memory.placeholder_for(reply.platform, reply.workspace, reply.channel, reply.thread, reply.voice.name)

    async def _earlier(self, outbox: Outbox, reply: Reply, task_id: int | None, thread: ThreadRecord | None) -> PostedMessage | None:
        """What was posted under this key before a restart: recorded, or found on the platform."""
        earlier = await self.memory.post_for_key(reply.key)
        if earlier is not None:
            return PostedMessage(message_id=earlier, thread=reply.thread or earlier)
        if not await self.memory.has_intent(reply.key):
            return None
        try:
            found = await outbox.find_posted(reply.channel, reply.thread, reply.key)
        except Exception:  # noqa: BLE001 - cannot tell: posting again is the lesser evil
            log.warning("could not look for an earlier post of %s; posting it", reply.key, exc_info=True)
            return None
        if found is not None:
            log.info("post %s was made before the restart (found on the platform)", reply.key)
            found = await outbox.post(reply, resume=found)  # a split post: its missing parts
            await self._record(reply, found, task_id, thread)
        return found

    async def _resolve(self, outbox: Outbox, waiting: Placeholder) -> str | None:
        """The placeholder's message id; one left unrecorded by a crash is looked for on the
        platform (and forgotten when it never went out)."""
        if waiting.message_id is not None:
            return waiting.message_id
        try:
            found = await outbox.find_posted(waiting.channel, waiting.thread, waiting.key)
        except Exception:  # noqa: BLE001
            log.debug("could not look for placeholder %s", waiting.key, exc_info=True)
            found = None
        if found is None:
            await self.memory.drop_placeholder(waiting.key)
            return None
        await self.memory.record_placeholder(waiting.model_copy(update={"message_id": found.message_id}))
        return found.message_id

    async def _record(self, reply: Reply, posted: PostedMessage, task_id: int | None, thread: ThreadRecord | None) -> None:
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
