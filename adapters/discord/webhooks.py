"""One webhook of ours per Discord channel: found again after a restart, created once, cached.

A webhook is how a bot posts under another name and avatar. Many replies can need a channel's
webhook at the same moment; a lock per channel makes them share one lookup (and at most one
creation). A channel where we cannot have one (no Manage Webhooks, 15 webhooks already, a DM) is
remembered, and logged once, so its posts go out under the bot's own name without asking again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

log = logging.getLogger(__name__)

#: The name of our webhook in each channel (1-80 characters, never "clyde" or "discord").
WEBHOOK_NAME = "Orchestra"
TOO_MANY_WEBHOOKS = 30007
#: "Cannot execute action on this channel type".
WRONG_CHANNEL_TYPE = 50024


def describe(exc: BaseException) -> str:
    """For the log: Discord's status and code, never a token."""
    if isinstance(exc, discord.HTTPException):
        return f"HTTP {exc.status}, code {exc.code}: {exc.text}"
    return type(exc).__name__


def _code(exc: BaseException) -> int:
    return getattr(exc, "code", 0) or 0


class ChannelWebhooks:
    def __init__(self, client: discord.Client, name: str, fetch: Callable[[int], Awaitable[Any]]):
        low = name.lower()
        if not 1 <= len(name) <= 80 or "clyde" in low or "discord" in low:
            raise ValueError("a webhook name has 1 to 80 characters and contains neither 'clyde' nor 'discord'")
        self.client = client
        self.webhook_name = name
        self._fetch = fetch
        self._hooks: dict[int, discord.Webhook] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._as_bot_channels: set[int] = set()  # channels where we post under the bot's own name

    def cached(self, channel_id: int) -> discord.Webhook | None:
        return self._hooks.get(channel_id)

    def as_bot(self, channel_id: int) -> bool:
        return channel_id in self._as_bot_channels

    def drop(self, channel_id: int) -> None:
        """Someone deleted it ("Unknown Webhook"): the next `get` finds or makes another."""
        self._hooks.pop(channel_id, None)

    def _lock(self, channel_id: int) -> asyncio.Lock:
        lock = self._locks.get(channel_id)
        if lock is None:
            lock = self._locks[channel_id] = asyncio.Lock()
        return lock

    async def get(self, channel_id: int, *, create: bool = True) -> discord.Webhook | None:
        """Our webhook in the channel: cached, found again, or created once (`create`). None: post
        as the bot (or, with create=False, we have none there)."""
        if channel_id in self._as_bot_channels:
            return None
        hook = self._hooks.get(channel_id)
        if hook is not None:
            return hook
        async with self._lock(channel_id):
            hook = self._hooks.get(channel_id)
            if hook is not None or channel_id in self._as_bot_channels:
                return hook
            channel = await self._fetch(channel_id)
            if isinstance(channel, discord.Thread):
                channel = channel.parent or await self._fetch(channel.parent_id)
            if not hasattr(channel, "create_webhook"):
                self._as_bot_channels.add(channel_id)  # a DM, a voice channel's chat…: no webhooks
                return None
            try:
                hook = await self._find_or_create(channel, create=create)
                if hook is None:
                    return None
            except discord.Forbidden as e:
                self._as_bot_channels.add(channel_id)
                log.warning(
                    "Discord: no Manage Webhooks permission in channel %s (%s): personas post under the bot's "
                    "own name there. Grant the bot Manage Webhooks for their own names and avatars.",
                    channel_id, describe(e),
                )
                return None
            except discord.HTTPException as e:
                if _code(e) == WRONG_CHANNEL_TYPE:  # Discord allows no webhook in this kind of channel
                    self._as_bot_channels.add(channel_id)
                    log.info("Discord: channel %s takes no webhooks; personas post under the bot's name there", channel_id)
                    return None
                if _code(e) != TOO_MANY_WEBHOOKS:
                    raise
                self._as_bot_channels.add(channel_id)
                log.warning(
                    "Discord: channel %s already has 15 webhooks; personas post under the bot's own name there "
                    "(delete an unused webhook to give them their names back)", channel_id,
                )
                return None
            self._hooks[channel_id] = hook
            return hook

    async def _find_or_create(self, channel: Any, *, create: bool = True) -> discord.Webhook | None:
        me = self.client.user
        for hook in await channel.webhooks():
            if hook.name == self.webhook_name and hook.token and hook.user is not None and me is not None and hook.user.id == me.id:
                return hook
        if not create:
            return None
        log.info("Discord: creating the %s webhook in channel %s", self.webhook_name, channel.id)
        return await channel.create_webhook(name=self.webhook_name, reason="Orchestra posts as its personas")
