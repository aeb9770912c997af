"""The Discord outbox: the engine's replies posted under the persona's name and avatar.

Discord lets a bot post under another name only through a webhook, so every guild channel gets
one webhook of ours ("Orchestra"), made once (a lock per channel: fifty replies arriving at once
make one webhook), cached, found again after a restart (`channel.webhooks()`), and used for the
channel's threads too (`thread=`): `webhooks.py` keeps them. Without the Manage Webhooks
permission, and in DMs (no webhooks there), posts go out under the bot's own name with the
persona's name in bold. The threads replies go in are made and reopened by `threads.py` (a mixin).

This module sends: a reply's parts in order, the placeholder edited into the first, a deleted
webhook made again, an archived thread reopened or posted around, the bot's own name when the
webhook cannot be used.

Discord has no message metadata: the part key of every message we post rides in its last
embed's footer (`render.key_of` reads it back), which is how `find_posted` recognises a post
made just before a crash. Discord's 429s are discord.py's business (its rate limiter waits them
out); a missing permission or an unknown channel is logged in one line and raised, so the engine
records the failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from dataclasses import replace as with_fields
from typing import Any

import discord

from adapters.discord.render import (
    DiscordPost,
    action_view,
    key_of,
    render_placeholder,
    render_reply,
)
from adapters.discord.threads import OutboxThreads, thread_name
from adapters.discord.webhooks import WEBHOOK_NAME, ChannelWebhooks
from adapters.discord.webhooks import describe as _describe
from engine.models import PostedMessage, Reply, ReplyKind, Voice

log = logging.getLogger(__name__)

#: How many recent messages `find_posted` reads (Discord's page size).
FIND_LIMIT = 100
CONTENT_MAX = 2000

# Discord's JSON error codes (https://discord.com/developers/docs/topics/opcodes-and-status-codes)
UNKNOWN_CHANNEL = 10003
UNKNOWN_WEBHOOK = 10015
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
THREAD_ARCHIVED = 50083


def allowed_mentions(asker: str | None) -> discord.AllowedMentions:
    """Nobody is notified but the person who asked (the bot mentions them on purpose)."""
    if not asker or not asker.isdigit():
        return discord.AllowedMentions.none()
    return discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(int(asker))], replied_user=False)


def _code(exc: BaseException) -> int:
    return getattr(exc, "code", 0) or 0


@dataclass(frozen=True)
class _Where:
    """Where a reply's parts go: the text channel (webhook owner), the thread inside it (None:
    the channel itself), whether this is a DM, and the webhook (None: the bot's own identity)."""

    channel: int
    thread: int | None
    dm: bool
    webhook: discord.Webhook | None

    @property
    def target(self) -> int:
        return self.thread or self.channel


class _UseBot(Exception):
    """The webhook cannot be used in this channel any more: post (the rest) as the bot."""


class DiscordOutbox(OutboxThreads):
    """Implements `engine.ports.Outbox` for Discord."""

    def __init__(self, client: discord.Client, *, webhook_name: str = WEBHOOK_NAME):
        self.client = client
        self.webhook_name = webhook_name
        self.webhooks = ChannelWebhooks(client, webhook_name, self._channel)
        self._locks: dict[Any, asyncio.Lock] = {}
        self._threads: set[int] = set()  # threads known to exist
        self._names: OrderedDict[str, str] = OrderedDict()  # message id -> name of its thread-to-be

    # --- the Outbox port ----------------------------------------------------------------------

    async def post(self, reply: Reply, replace: str | None = None, resume: PostedMessage | None = None) -> PostedMessage:
        where = await self._where(reply.workspace, reply.channel, reply.thread, reply.voice)
        if resume is not None:
            await self._complete(reply, where, resume)
            return resume
        posts = render_reply(reply, as_webhook=where.webhook is not None)
        first: int | None = None
        n = 0
        while n < len(posts):
            try:
                message_id = None
                if n == 0 and replace and replace.isdigit():
                    message_id = await self._edit(where, int(replace), posts[0], reply.asker)
                if message_id is None:
                    message_id = await self._send(where, posts[n], reply.voice, reply.asker)
            except _UseBot:
                where = with_fields(where, webhook=None)
                posts = render_reply(reply, as_webhook=False)
                continue  # the same part again, in the bot's own name
            if first is None:
                first = message_id
                if reply.kind is ReplyKind.ROOT and where.thread is None and not where.dm:
                    # the root opens the investigation's thread; its later parts go inside it
                    name = thread_name(reply.title) or f"Investigation {reply.investigation_id or ''}".strip()
                    if await self.ensure_thread(str(where.channel), str(message_id), name):
                        where = with_fields(where, thread=message_id)
            n += 1
        assert first is not None
        if where.dm:
            thread = reply.thread or reply.channel
        else:
            thread = str(where.thread) if where.thread else str(first)
        return PostedMessage(message_id=str(first), thread=thread)

    async def working(self, voice: Voice, channel: str, thread: str | None, key: str = "") -> str | None:
        """A placeholder in her name ("Sophia is thinking…"), later edited into her answer."""
        try:
            where = await self._where("", channel, thread, voice)
            post = render_placeholder(voice, key, as_webhook=where.webhook is not None)
            try:
                message_id = await self._send(where, post, voice, None)
            except _UseBot:
                where = with_fields(where, webhook=None)
                message_id = await self._send(where, render_placeholder(voice, key, as_webhook=False), voice, None)
            return str(message_id)
        except Exception as e:  # noqa: BLE001 - a status line is never worth failing a turn for
            log.warning("Discord: could not post the working placeholder in %s: %s", channel, _describe(e))
            return None

    async def find_posted(self, channel: str, thread: str | None, key: str) -> PostedMessage | None:
        """Our message with `key` among the thread's (or the channel's) latest messages."""
        if not key:
            return None
        for message in await self._ours(channel, thread):
            if key_of(message) == key:
                return PostedMessage(message_id=str(message.id), thread=thread or str(message.id))
        return None

    # --- buttons ------------------------------------------------------------------------------

    async def show_taken(self, channel: str, thread: str | None, message_id: str, line: str) -> None:
        """Replace a clicked message's buttons by a line saying who asked for what."""
        messageable = self.client.get_partial_messageable(int(thread or channel))
        message = await messageable.fetch_message(int(message_id))
        content = message.content or ""
        content = f"{content}\n{line}" if content and len(content) + len(line) + 1 <= CONTENT_MAX else (content or line)
        quiet = discord.AllowedMentions.none()
        if message.webhook_id is not None:
            hook = await self._webhook(int(channel))
            if hook is None or hook.id != message.webhook_id:
                log.info("Discord: message %s is not from our current webhook; its buttons stay", message_id)
                return
            await hook.edit_message(
                message.id, content=content, view=None, allowed_mentions=quiet,
                thread=discord.Object(int(thread)) if thread else discord.utils.MISSING,
            )
        else:
            await message.edit(content=content, view=None, allowed_mentions=quiet)

    async def is_ours(self, message: discord.Message) -> bool:
        """A message we posted: through our webhook, or in the bot's own name."""
        me = self.client.user
        if me is not None and message.author.id == me.id and message.webhook_id is None:
            return True
        if message.webhook_id is None or message.guild is None:
            return False
        channel = message.channel
        parent_id = getattr(channel, "parent_id", None) or channel.id
        hook = self.webhooks.cached(parent_id)
        if hook is None and not self.webhooks.as_bot(parent_id):
            try:
                hook = await self._webhook(parent_id, create=False)
            except Exception as e:  # noqa: BLE001 - cannot tell: not ours
                log.debug("Discord: could not look up the webhook of %s: %s", parent_id, _describe(e))
        return hook is not None and hook.id == message.webhook_id

    # --- where a reply goes -------------------------------------------------------------------

    async def _where(self, workspace: str, channel: str, thread: str | None, voice: Voice) -> _Where:
        channel_id = int(channel)
        dm = workspace == "dm" or isinstance(self.client.get_channel(channel_id), discord.abc.PrivateChannel)
        thread_id = int(thread) if thread and not dm and thread != channel else None
        if dm:
            return _Where(channel=channel_id, thread=None, dm=True, webhook=None)
        if thread_id is None or thread_id in self._threads:
            return _Where(channel=channel_id, thread=thread_id, dm=False, webhook=await self._webhook(channel_id))
        # a thread to make and (on a channel's first reply) a webhook to find: one round trip, not two
        name = self._names.get(str(thread_id)) or f"Conversation with {voice.display_name}"
        made, hook = await asyncio.gather(
            self.ensure_thread(channel, str(thread_id), name), self._webhook(channel_id), return_exceptions=True
        )
        for outcome in (made, hook):
            if isinstance(outcome, BaseException):
                raise outcome
        assert not isinstance(hook, BaseException)
        return _Where(channel=channel_id, thread=thread_id if made else None, dm=False, webhook=hook)

    async def _webhook(self, channel_id: int, *, create: bool = True) -> discord.Webhook | None:
        return await self.webhooks.get(channel_id, create=create)

    async def _channel(self, channel_id: int) -> Any:
        return self.client.get_channel(channel_id) or await self.client.fetch_channel(channel_id)

    def _lock(self, key: Any) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    # --- sending ------------------------------------------------------------------------------

    async def _send(self, where: _Where, post: DiscordPost, voice: Voice, asker: str | None, *, prefix: str = "") -> int:
        content = post.content
        if prefix:
            content = f"{prefix}\n{content}" if len(prefix) + len(content) + 1 <= CONTENT_MAX else content
        kwargs: dict[str, Any] = {
            "content": content or None, "embeds": list(post.embeds), "allowed_mentions": allowed_mentions(asker),
        }
        view = action_view(post.actions) if post.actions else None
        if view is not None:
            view.stop()  # the buttons are answered by the listeners' DynamicItem (interactions.py), not by this object
            kwargs["view"] = view
        try:
            if where.webhook is not None:
                return await self._send_webhook(where, voice, kwargs)
            message = await self.client.get_partial_messageable(where.target).send(**kwargs)
            return message.id
        except discord.HTTPException as e:
            if _code(e) == THREAD_ARCHIVED and where.thread is not None:
                if await self._unarchive(where.thread):
                    return await self._send(where, post, voice, asker, prefix=prefix)
                line = f"-# <#{where.thread}> is archived, so I'm posting here."
                return await self._send(with_fields(where, thread=None), post, voice, asker, prefix=line)
            if _code(e) in (UNKNOWN_CHANNEL, MISSING_ACCESS, MISSING_PERMISSIONS) or isinstance(e, discord.Forbidden):
                log.warning(
                    "Discord: cannot post in channel %s%s: %s (the bot needs View Channel, Send Messages and "
                    "Send Messages in Threads there)", where.channel, f" thread {where.thread}" if where.thread else "",
                    _describe(e),
                )
            raise

    async def _send_webhook(self, where: _Where, voice: Voice, kwargs: dict[str, Any]) -> int:
        identity: dict[str, Any] = {"username": voice.display_name[:80], "wait": True}
        if voice.avatar_url:
            identity["avatar_url"] = voice.avatar_url
        if where.thread is not None:
            identity["thread"] = discord.Object(where.thread)
        assert where.webhook is not None
        try:
            message = await where.webhook.send(**kwargs, **identity)
        except discord.NotFound as e:
            if _code(e) != UNKNOWN_WEBHOOK:
                raise
            log.warning("Discord: our webhook in channel %s was deleted; making a new one", where.channel)
            self.webhooks.drop(where.channel)
            hook = await self._webhook(where.channel)
            if hook is None:
                raise _UseBot() from e
            message = await hook.send(**kwargs, **identity)
        assert message is not None
        return message.id

    async def _edit(self, where: _Where, message_id: int, post: DiscordPost, asker: str | None) -> int | None:
        """Edit the placeholder into the first part; None when it is gone (post it fresh)."""
        kwargs: dict[str, Any] = {
            "content": post.content or None, "embeds": list(post.embeds), "allowed_mentions": allowed_mentions(asker),
        }
        view = action_view(post.actions) if post.actions else None
        if view is not None:
            view.stop()
            kwargs["view"] = view
        try:
            if where.webhook is not None:
                thread = discord.Object(where.thread) if where.thread is not None else discord.utils.MISSING
                await where.webhook.edit_message(message_id, thread=thread, **kwargs)
            else:
                await self.client.get_partial_messageable(where.target).get_partial_message(message_id).edit(**kwargs)
        except (discord.NotFound, discord.Forbidden) as e:
            if _code(e) == UNKNOWN_WEBHOOK:
                self.webhooks.drop(where.channel)
            log.info("Discord: placeholder %s in %s is gone (%s); posting anew", message_id, where.target, _describe(e))
            return None
        except discord.HTTPException as e:
            if _code(e) == THREAD_ARCHIVED and where.thread is not None and await self._unarchive(where.thread):
                return await self._edit(where, message_id, post, asker)
            log.info("Discord: could not edit placeholder %s (%s); posting anew", message_id, _describe(e))
            return None
        return message_id

    # --- reading back -------------------------------------------------------------------------

    async def _ours(self, channel: str, thread: str | None) -> list[discord.Message]:
        """Our messages among the latest of the thread (or the channel), oldest first."""
        target = int(thread) if thread else int(channel)
        hook = None
        try:
            hook = await self._webhook(int(channel))
        except Exception as e:  # noqa: BLE001 - then only the bot's own posts count
            log.debug("Discord: webhook lookup for %s failed: %s", channel, _describe(e))
        me = self.client.user
        found: list[discord.Message] = []
        try:
            async for message in self.client.get_partial_messageable(target).history(limit=FIND_LIMIT):
                by_hook = hook is not None and message.webhook_id == hook.id
                by_bot = me is not None and message.webhook_id is None and message.author.id == me.id
                if by_hook or by_bot:
                    found.append(message)
        except discord.NotFound:
            return []  # no such thread (yet): nothing was posted there
        found.reverse()
        return found

    async def _complete(self, reply: Reply, where: _Where, first: PostedMessage) -> None:
        """A split reply whose first part went out before a crash: post the parts still missing."""
        posts = render_reply(reply, as_webhook=where.webhook is not None)
        if len(posts) < 2:
            return
        thread = reply.thread or first.thread or first.message_id
        if not where.dm and thread and where.thread is None and thread.isdigit():
            where = with_fields(where, thread=int(thread))
        present = {key_of(m) for m in await self._ours(reply.channel, None if where.dm else thread)}
        for n in range(1, len(posts)):
            if posts[n].key and posts[n].key in present:
                continue
            try:
                await self._send(where, posts[n], reply.voice, reply.asker)
            except _UseBot:
                where = with_fields(where, webhook=None)
                posts = render_reply(reply, as_webhook=False)
                await self._send(where, posts[n], reply.voice, reply.asker)
