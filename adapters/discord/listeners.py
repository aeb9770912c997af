"""Discord listeners: translate a message to a `Task`, store it with the engine, then answer.

Who starts a turn: a person (never a bot or a webhook, our own persona posts included) who
mentions the bot, writes to it in a DM, writes in a thread the engine knows, or replies to one of
our persona's messages (the engine looks the persona up by message id).

`DiscordListeners` is what the app wires up (`install`, `on_message`, `idle`). It holds what
messages and interactions share (the engine, the outbox, who is allowed, storing a task, work run
after the acknowledgements owed) and the messages; the slash commands and buttons come from its
mixin in `interactions.py`. A gateway message needs no acknowledgement: what is slow about it (a
thread to make, a refusal) runs in the background (`later`), after the interactions' answers.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import discord

from adapters.discord import translate as tr
from adapters.discord.interactions import CLICK_WINDOW, InteractionListeners
from adapters.discord.outbox import DiscordOutbox
from adapters.listening import AfterAck, EnginePort
from engine.memory.errors import is_transient
from engine.models import Accepted, Task, TaskRefused

if TYPE_CHECKING:
    from adapters.discord.persona_command import PersonaAdminPort
    from bot.settings import Settings

log = logging.getLogger(__name__)


class _Recent:
    """Keys seen a moment ago in this process (refusals said once, clicks taken once)."""

    def __init__(self, window: float | None = None, size: int = 10_000):
        self.window, self.size = window, size
        self._seen: OrderedDict[Any, float] = OrderedDict()

    def first_time(self, key: Any) -> bool:
        now = time.monotonic()
        while self._seen and (len(self._seen) > self.size or (
                self.window is not None and now - next(iter(self._seen.values())) > self.window)):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def forget(self, key: Any) -> None:
        self._seen.pop(key, None)


class DiscordListeners(InteractionListeners):
    def __init__(self, engine: EnginePort, settings: Settings, outbox: DiscordOutbox, *,
                 persona_admin: PersonaAdminPort | None = None):
        self.engine = engine
        self.persona_admin = persona_admin  # /persona (persona_command.py)
        self.outbox = outbox
        self.allowed_channels = set(getattr(settings, "allowed_channels", []) or [])
        self.allowed_users = set(getattr(settings, "allowed_users", []) or [])
        self.admin_roles = {str(r).strip().lower() for r in (getattr(settings, "discord_admin_roles", []) or []) if str(r).strip()}
        self.client: discord.Client | None = None
        self.refused = _Recent()
        self.clicks = _Recent(CLICK_WINDOW)
        self._after = AfterAck("Discord", log, lambda e: getattr(e, "text", None))
        self.idle = self._after.idle

    def later(self, work: Awaitable[Any], what: str) -> None:
        """Run `work` (a REST call: a thread to make, a refusal, buttons to remove) in the
        background, once every acknowledgement owed now has gone out (`engine.intake`): under a
        burst, interactions are stored and answered first, and these calls never delay that."""
        self._after.later(self._after_acks(work), what)

    async def _after_acks(self, work: Awaitable[Any]) -> Any:
        intake = getattr(self.engine, "intake", None)
        if intake is not None:
            await intake.settled()
        return await work

    # --- policy -------------------------------------------------------------------------------

    def allowed(self, channel: str, user: str, thread: str | None = None) -> bool:
        """ORCHESTRA_ALLOWED_CHANNELS may name a text channel (its threads included) or one
        thread of it; ORCHESTRA_ALLOWED_USERS, people."""
        return (not self.allowed_channels or channel in self.allowed_channels or thread in self.allowed_channels) and (
            not self.allowed_users or user in self.allowed_users)

    async def _submit(self, task: Task) -> Accepted:
        accepted = await self.engine.submit(task)
        if accepted.duplicate:
            log.info("Discord: duplicate %s event %s ignored", task.kind.value, task.event_id)
        return accepted

    def _say(self, message: discord.Message, text: str, what: str, *, quiet: bool = False) -> None:
        """A short reply from the bot that notifies nobody, once per message. `quiet` (catching
        up after a restart, `catch_up.py`): only logged, since the live bot may have said it."""
        if quiet:
            log.info("Discord: catching up, did not %s %s (logged, not said)", what, message.id)
            return
        if self.refused.first_time((what, message.id)):
            self.later(message.reply(text, allowed_mentions=discord.AllowedMentions.none(), mention_author=False), what)

    # --- messages -----------------------------------------------------------------------------

    async def on_message(self, message: discord.Message, *, catching_up: bool = False) -> bool:
        """A message from the gateway, or read from a channel's history after a restart
        (`catching_up`: what would be said to refuse it is only logged). True when it was
        stored as a new task."""
        client = self.client
        if client is None or client.user is None or not tr.from_person(message):
            return False  # bots and webhooks (our own persona posts too) never start turns
        me = client.user.id
        if message.guild is not None and isinstance(message.channel, discord.PartialMessageable):
            await self._resolve_channel(message)
        channel, thread = tr.place(message)
        user = str(message.author.id)
        dm = message.guild is None
        if dm or tr.mentions_bot(message, me):
            if not self.allowed(channel, user, thread):
                self._say(message, tr.REFUSAL, "refuse a message", quiet=catching_up)
                return False
            task = tr.message_task(message, bot_id=me)
            top_level = thread is None and not dm
            if top_level:  # a top-level mention: its thread is made from it, named by the question
                self.outbox.name_thread(channel, str(message.id), task.text)
            taken = await self._take(message, task, quiet=catching_up)
            if taken and top_level:
                self.later(self.outbox.prepare(channel, str(message.id)), "prepare the thread")
            return taken
        if not self.allowed(channel, user, thread):
            return False  # passive messages from people not allowed: silence
        workspace = tr.workspace_of(message.guild.id if message.guild else None)
        if thread is not None and await self.engine.is_known_thread(tr.PLATFORM, workspace, channel, thread):
            return await self._take(message, tr.message_task(message, bot_id=me), quiet=catching_up)
        replied = await self._replied_to(message)
        if replied is not None and await self.outbox.is_ours(replied):
            return await self._take(message, tr.message_task(message, bot_id=me), quiet=catching_up)
        return False

    async def _replied_to(self, message: discord.Message) -> discord.Message | None:
        """The message `message` replies to. Discord usually sends it along; when it did not
        (`referenced_message` absent: "the backend did not attempt to fetch it"), it is read
        from discord.py's cache or fetched, so a reply to a persona still reaches her."""
        reference = message.reference
        if reference is None or message.type is not discord.MessageType.reply or not reference.message_id:
            return None
        if isinstance(reference.resolved, discord.Message):
            return reference.resolved
        if reference.resolved is not None:
            return None  # deleted
        cached = reference.cached_message
        if cached is not None:
            return cached
        assert self.client is not None
        where = reference.channel_id or message.channel.id
        try:
            guild_id = message.guild.id if message.guild else None
            return await self.client.get_partial_messageable(where, guild_id=guild_id).fetch_message(reference.message_id)
        except discord.HTTPException as e:
            log.info("Discord: could not read message %s that %s replies to (%s)", reference.message_id, message.id,
                     getattr(e, "text", None) or type(e).__name__)
            return None

    async def _resolve_channel(self, message: discord.Message) -> None:
        """A message in a channel discord.py has not cached (a thread it never saw, or one that
        was archived, which drops it from the cache) comes with a bare `PartialMessageable`:
        ask Discord what it is, so that a thread is taken as a thread of its parent channel."""
        assert self.client is not None
        try:
            message.channel = await self.client.fetch_channel(message.channel.id)  # type: ignore[assignment]
        except discord.HTTPException as e:
            log.info("Discord: could not look up channel %s (%s); taking it as a channel", message.channel.id,
                     getattr(e, "text", None) or type(e).__name__)

    async def _take(self, message: discord.Message, task: Task, *, quiet: bool = False) -> bool:
        """Submit; Discord will not send the message again, so a failure is said to its author
        (`quiet`: logged only). True when a new task was stored (not a duplicate)."""
        try:
            return not (await self._submit(task)).duplicate
        except TaskRefused as e:
            log.warning("Discord: message %s refused, it can never be stored: %s", message.id, e)
            self._say(message, tr.UNREADABLE, "say a message was unreadable", quiet=quiet)
        except Exception as e:
            if not is_transient(e):  # a locked database, a slow disk, a server restarting
                raise
            log.warning("Discord: message %s not taken: %s", message.id, type(e).__name__)
            self._say(message, tr.NOT_TAKEN, "say a message was not taken", quiet=quiet)
        return False
