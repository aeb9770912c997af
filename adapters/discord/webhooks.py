"""One webhook of ours per Discord channel: found again after a restart, created once, cached.

A webhook is how a bot posts under another name and avatar. Many replies can need a channel's
webhook at the same moment; a lock per channel makes them share one lookup (and at most one
creation). The lookup reads the whole server's webhooks in one request, shared by every channel
looked up within the minute (a burst in 200 channels: one request, not 200); without Manage
Webhooks server-wide (only in some channels), each channel is asked. A channel where we cannot have one (no Manage Webhooks, 15 webhooks already, a DM) is
remembered, and logged once, so its posts go out under the bot's own name without asking again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord

log = logging.getLogger(__name__)

#: The name of our webhook in each channel (1-80 characters, never "clyde" or "discord").
WEBHOOK_NAME = "Orchestra"
TOO_MANY_WEBHOOKS = 30007
#: "Cannot execute action on this channel type".
WRONG_CHANNEL_TYPE = 50024


#: How long a reading of a server's webhooks answers for its channels ("none of ours here": make one).
LISTING_FRESH = 60.0


@dataclass
class _Listing:
    """One reading of a server's webhooks: ours by channel id (None while it fails)."""

    at: float
    ours: asyncio.Future[dict[int, discord.Webhook]]


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
        self._listings: dict[int, _Listing] = {}  # guild id -> its webhooks, read once a minute at most

    def cached(self, channel_id: int) -> discord.Webhook | None:
        return self._hooks.get(channel_id)

    def as_bot(self, channel_id: int) -> bool:
        return channel_id in self._as_bot_channels

    def drop(self, channel_id: int) -> None:
        """Someone deleted it ("Unknown Webhook"): the next `get` finds or makes another."""
        self._hooks.pop(channel_id, None)
        self._listings.clear()  # they may still name it: read the server's webhooks afresh

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

    def _is_ours(self, hook: discord.Webhook) -> bool:
        me = self.client.user
        return (hook.name == self.webhook_name and bool(hook.token) and hook.user is not None and me is not None
                and hook.user.id == me.id)

    async def _find_or_create(self, channel: Any, *, create: bool = True) -> discord.Webhook | None:
        hook, known = await self._from_listing(channel)
        if not known:
            hook = next((h for h in await channel.webhooks() if self._is_ours(h)), None)
        if hook is not None:
            return hook
        if not create:
            return None
        log.info("Discord: creating the %s webhook in channel %s", self.webhook_name, channel.id)
        return await channel.create_webhook(name=self.webhook_name, reason="Orchestra posts as its personas")

    async def _from_listing(self, channel: Any) -> tuple[discord.Webhook | None, bool]:
        """Our webhook in `channel` from a reading of its server's webhooks (shared, at most once
        a minute). `known` False: no reading (no Manage Webhooks server-wide, or it failed): ask
        the channel itself."""
        guild = getattr(channel, "guild", None)
        if guild is None or not hasattr(guild, "webhooks"):
            return None, False
        listing = self._listings.get(guild.id)
        if listing is None or time.monotonic() - listing.at > LISTING_FRESH:
            listing = self._listings[guild.id] = _Listing(time.monotonic(), asyncio.ensure_future(self._ours_in(guild)))
        try:
            ours = await asyncio.shield(listing.ours)
        except discord.Forbidden:
            return None, False  # kept for the minute: those channels are asked one by one
        except Exception as e:  # noqa: BLE001 - a 5xx, a timeout, a lost connection: ask the channel
            if self._listings.get(guild.id) is listing:
                self._listings.pop(guild.id)  # and read the server again next time
            log.debug("Discord: could not read server %s's webhooks: %s", guild.id, describe(e))
            return None, False
        return ours.get(channel.id), True

    async def _ours_in(self, guild: discord.Guild) -> dict[int, discord.Webhook]:
        ours: dict[int, discord.Webhook] = {}
        for hook in await guild.webhooks():
            if self._is_ours(hook) and hook.channel_id is not None:
                ours.setdefault(hook.channel_id, hook)
        return ours
