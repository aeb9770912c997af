"""After a fresh gateway session, read what was posted while the bot was down.

A session that RESUMEs gets the missed events replayed; a new one (start-up after a deploy or a
crash, or a session Discord invalidated) gets nothing of what was posted in between, and Slack's
kind of redelivery does not exist on Discord. So after every READY (never after RESUMED) this
reads, in the background, the history of the places the memory knows had work within the window
(`DISCORD_CATCH_UP`, default 1h; `engine.recent_places`): the threads and DM channels, and the
channels where top-level mentions were made. Each message goes through the listeners' own
`on_message` (bots and webhooks ignored, the allowlists, mentions, known threads, replies to a
persona), so what would have been answered live is answered now; the engine's event-id dedupe
(`message:{id}`) runs once a message that was stored already, or also arrives live.

What it reads, and from where:
- only places this client can see: its servers (`client.guilds`: with shards, each replica its
  own), DMs only where discord.py receives them (unsharded, or shard 0); the `PLACES` most
  recently active, the rest skipped with a log line;
- in each, after the message stored last there (snowflakes are time-ordered) and never older
  than the window; oldest first, at most `PER_PLACE` messages (a log line says when more were
  left).

Said once: a message the bot already replied to (a refusal, "not taken") is skipped, and while
catching up a refusal is logged, never said, so a restart never repeats one.

Failures are one log line each, and the next place is read: catching up never stops the adapter.
No Read Message History (Discord would answer with no messages, not an error: checked first), a
403 (no View Channel, a private thread), a deleted channel or thread (404), a rate limit
discord.py gave up on, a database that does not answer.

Accepted edges: a live message arriving in a place while it is being read may be submitted
before an older one read here (their turns then run in that order); and a place whose missed
messages were not read this time (the process killed while catching up, a 403, the memory not
answering) is read on the next start only after the newest message stored there by then: a live
message stored in the same place meanwhile hides the older missed ones.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import discord

from adapters.discord import translate as tr
from adapters.discord.webhooks import describe
from engine.memory.errors import is_transient
from engine.memory.records import RecentPlace

if TYPE_CHECKING:
    from adapters.discord.listeners import DiscordListeners
    from adapters.listening import EnginePort

log = logging.getLogger(__name__)

#: The most recently active places read after a restart.
PLACES = 100
#: Messages read per place at most (one request; a second, of one message, tells whether more were left).
PER_PLACE = 100
#: How many places the memory is asked for (before those of other replicas are set aside).
ASKED = 1000

_MESSAGE_EVENT = re.compile(r"message:(\d+)")


def last_message_id(place: RecentPlace) -> int:
    """The id of the message stored last in `place` (0: none)."""
    match = _MESSAGE_EVENT.fullmatch(place.last_message_event or "")
    return int(match[1]) if match else 0


def where(place: RecentPlace) -> str:
    """For the log."""
    if place.workspace == tr.DM_WORKSPACE:
        return f"DM channel {place.channel}"
    if place.thread is None:
        return f"channel {place.channel} (server {place.workspace})"
    return f"thread {place.thread} of channel {place.channel} (server {place.workspace})"


def may_read_history(channel: Any) -> bool:
    """Whether the bot has Read Message History in a server channel or thread: without it Discord
    answers a history read with no messages, not with an error. True when not known (a DM)."""
    guild = getattr(channel, "guild", None)
    me = guild.me if guild is not None else None
    if me is None or not hasattr(channel, "permissions_for"):
        return True
    return channel.permissions_for(me).read_message_history


class CatchUp:
    """Started by `OrchestraClient.on_ready`; `stop()` when the adapter stops receiving."""

    def __init__(self, client: discord.Client, listeners: DiscordListeners, engine: EnginePort, window: timedelta,
                 *, places: int = PLACES, per_place: int = PER_PLACE):
        self.client, self.listeners, self.engine, self.window = client, listeners, engine, window
        self.places, self.per_place = places, per_place
        self._task: asyncio.Task[None] | None = None
        self._again = False
        #: Passes finished (read every place, or gave up): for the log, and for tests to wait on.
        self.passes = 0

    def start(self) -> None:
        """Catch up in the background (event handling and acknowledgements never wait for it);
        a READY while a catch-up still runs makes it run once more when it is done."""
        if not self.window:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._run(), name="discord-catch-up")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self.once()
            except Exception:  # never the adapter's end; the log has it
                log.exception("Discord: catching up on missed messages failed")
            self.passes += 1
            if not self._again:
                return

    async def once(self) -> None:
        """One pass over the places; returns when every one was read (or given up)."""
        since = discord.utils.utcnow() - self.window
        floor = discord.utils.time_snowflake(since)
        try:
            places = await self.engine.recent_places(tr.PLATFORM, since, limit=ASKED)
        except Exception as e:  # a database away: said; the next start tries again
            log.warning("Discord: could not catch up on messages posted while the bot was down: the memory did not "
                        "answer (%s)", type(e).__name__, exc_info=None if is_transient(e) else e)
            return
        places = [p for p in places if self.visible(p)]
        if len(places) > self.places:
            log.warning("Discord: catching up on the %d most recently active places; %d older one(s) skipped",
                        self.places, len(places) - self.places)
            places = places[:self.places]
        read = taken = 0
        for place in places:
            try:
                n, new = await self._read(place, max(floor, last_message_id(place)))
            except Exception as e:  # noqa: BLE001 - one place's trouble is not the others'
                self._gave_up(place, e)
                continue
            read, taken = read + n, taken + new
        log.info("Discord: caught up on %d place(s) (%s back): %d message(s) read, %d new task(s)",
                 len(places), self.window, read, taken)

    def visible(self, place: RecentPlace) -> bool:
        """A place this client receives events for: one of its servers, or DMs where discord.py
        gets them (unsharded, or shard 0)."""
        if place.workspace == tr.DM_WORKSPACE:
            shard_ids = getattr(self.client, "shard_ids", None)
            return not shard_ids or 0 in shard_ids
        return place.workspace.isdigit() and self.client.get_guild(int(place.workspace)) is not None

    async def _read(self, place: RecentPlace, after: int) -> tuple[int, int]:
        """Read `place` after message `after`, oldest first; (messages read, new tasks)."""
        channel = await self._channel(int(place.thread or place.channel))
        if not may_read_history(channel):
            log.warning("Discord: cannot catch up in %s: give the bot Read Message History there (without it "
                        "Discord shows it no messages)", where(place))
            return 0, 0
        most = self.per_place
        messages = [m async for m in channel.history(after=discord.Object(after), oldest_first=True, limit=most + 1)]
        if len(messages) > most:
            log.warning("Discord: more than %d messages were posted in %s while the bot was down; the first %d "
                        "are read", most, where(place), most)
            messages = messages[:most]
        new = 0
        for message in self.unanswered(messages):
            if await self.listeners.on_message(message, catching_up=True):
                new += 1
        return len(messages), new

    def unanswered(self, messages: Iterable[discord.Message]) -> list[discord.Message]:
        """The messages the bot did not reply to itself (its replies are refusals and "not
        taken": said once, never again after a restart)."""
        messages = list(messages)
        me = self.client.user.id if self.client.user else None
        answered = {m.reference.message_id for m in messages if m.author.id == me and m.reference is not None}
        return [m for m in messages if m.id not in answered]

    async def _channel(self, channel_id: int) -> Any:
        channel = self.client.get_channel(channel_id)
        if channel is None:
            channel = await self.client.fetch_channel(channel_id)  # an archived thread, a DM after a restart
        return channel

    @staticmethod
    def _gave_up(place: RecentPlace, e: Exception) -> None:
        if isinstance(e, discord.Forbidden):
            log.warning("Discord: cannot catch up in %s: Discord refused (give the bot View Channel there; a "
                        "private thread: add the bot to it): %s", where(place), describe(e))
        elif isinstance(e, discord.NotFound):
            log.info("Discord: nothing to catch up in %s: it is gone (or never was a thread): %s",
                     where(place), describe(e))
        elif isinstance(e, discord.HTTPException):
            log.warning("Discord: could not catch up in %s: %s", where(place), describe(e))
        else:
            log.warning("Discord: could not catch up in %s: %s", where(place), type(e).__name__, exc_info=e)
