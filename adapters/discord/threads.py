"""The threads a reply goes in: named from the question, made once, reopened when archived.

A top-level mention or a new investigation gets its own thread, made from the message (the
thread takes the message's id) and named from its question (`name_thread`, `thread_name`). Many
replies may need the same thread at once: a lock per thread makes one (`ensure_thread`). A thread
that cannot be made (no permission, a DM, a channel without threads) means the reply is answered
in the channel. An archived thread is reopened before posting in it (`_unarchive`).

A mixin of `DiscordOutbox` (`outbox.py`), which posts the replies; kept apart so that the outbox
reads as sending (posts, edits, fallbacks) and the making of threads reads on its own.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from adapters.discord.webhooks import _code
from adapters.discord.webhooks import describe as _describe

log = logging.getLogger(__name__)

#: Threads we make from a mention stay visible a day without activity.
AUTO_ARCHIVE = 1440
THREAD_NAME_MAX = 100

# Discord's JSON error codes (https://discord.com/developers/docs/topics/opcodes-and-status-codes)
UNKNOWN_MESSAGE = 10008
THREAD_EXISTS = 160004
#: "Cannot execute action on this channel type": e.g. a voice channel's text chat has no threads.
WRONG_CHANNEL_TYPE = 50024


def thread_name(text: str | None) -> str:
    """A thread name from a question: one line, 1-100 characters ("" when nothing is left)."""
    name = re.sub(r"\s+", " ", text or "").strip()
    if len(name) > THREAD_NAME_MAX:
        name = name[: THREAD_NAME_MAX - 1].rstrip() + "…"
    return name


class OutboxThreads:
    """Making and naming threads, for `DiscordOutbox`; what they use from it is named here."""

    client: discord.Client
    _threads: set[int]
    _names: OrderedDict[str, str]
    _lock: Callable[[Any], asyncio.Lock]
    _channel: Callable[[int], Awaitable[Any]]
    _webhook: Callable[..., Awaitable[discord.Webhook | None]]

    # --- threads ------------------------------------------------------------------------------

    def name_thread(self, channel: str, message_id: str, name: str) -> None:
        """What to call the thread the first post under `message_id` will create (the question)."""
        self._names[message_id] = thread_name(name)
        while len(self._names) > 10_000:
            self._names.popitem(last=False)

    async def prepare(self, channel: str, message_id: str) -> None:
        """Make a top-level mention's thread and find (or make) the channel's webhook as soon as
        the mention is stored, while the engine is still at its own work: her placeholder can
        then go out at once. Best effort: the first post makes whatever is missing and reports
        what fails."""
        try:
            await asyncio.gather(self.ensure_thread(channel, message_id, None), self._webhook(int(channel)))
        except Exception as e:  # noqa: BLE001 - the first post tries again and says what is wrong
            log.debug("Discord: could not prepare the thread of %s in %s: %s", message_id, channel, _describe(e))

    async def ensure_thread(self, channel: str, message_id: str, name: str | None) -> bool:
        """Create the thread from the message once (it gets the message's id). True when the
        thread is there; False when it cannot be made (no permission, a DM)."""
        thread_id = int(message_id)
        if thread_id in self._threads:
            return True
        async with self._lock(("thread", thread_id)):
            if thread_id in self._threads:
                return True
            if isinstance(self.client.get_channel(thread_id), discord.Thread):
                self._threads.add(thread_id)
                return True
            title = thread_name(name) or self._names.get(message_id) or "Conversation"
            try:
                parent = await self._channel(int(channel))
                if isinstance(parent, discord.abc.PrivateChannel) or not hasattr(parent, "get_partial_message"):
                    return False  # DMs have no threads
                await parent.get_partial_message(thread_id).create_thread(name=title, auto_archive_duration=AUTO_ARCHIVE)
            except discord.HTTPException as e:
                if _code(e) == THREAD_EXISTS:
                    pass  # made already (another process, or before a restart)
                elif _code(e) == UNKNOWN_MESSAGE:
                    log.info("Discord: %s is not a message in %s; taking it for a thread", thread_id, channel)
                elif _code(e) == WRONG_CHANNEL_TYPE:
                    log.info("Discord: channel %s has no threads; answering in the channel", channel)
                    return False
                elif isinstance(e, discord.Forbidden):
                    log.warning(
                        "Discord: cannot create a thread in channel %s (grant the bot Create Public Threads "
                        "there); answering in the channel instead", channel,
                    )
                    return False
                else:
                    raise
            except ValueError:  # a message without a guild: no threads here
                return False
            self._threads.add(thread_id)
            self._names.pop(message_id, None)
            return True

    async def _unarchive(self, thread_id: int) -> bool:
        try:
            thread = await self._channel(thread_id)
            await thread.edit(archived=False)
        except Exception as e:  # noqa: BLE001 - refused: the caller posts where people see it
            log.warning("Discord: thread %s is archived and could not be reopened: %s", thread_id, _describe(e))
            return False
        log.info("Discord: reopened archived thread %s", thread_id)
        return True
