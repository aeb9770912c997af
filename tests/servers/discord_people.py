"""What people do on the local Discord, delivered through its gateway as Discord delivers it:
messages (from a person, another bot, a webhook; with mentions, replies; in a channel, thread or
DM), threads they start, slash commands and autocomplete, button clicks. Each helper stores what
it creates and returns the payload that was dispatched.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from tests.servers import discord_payloads as wire
from tests.servers.discord_world import DiscordWorld


class DiscordPeople(DiscordWorld):
    """The dispatching half of `DiscordServer` (which records `dispatched_at` and `interactions`)."""

    def __init__(self) -> None:
        self.interactions: dict[str, dict[str, Any]] = {}  # token -> the interaction payload
        self._dispatched_at: dict[int, float] = {}
        super().__init__()

    async def user_message(
        self, content: str, *, channel_id: int | None = None, author: dict[str, Any] | None = None,
        mentions: list[dict[str, Any]] | None = None, mention_roles: list[int] | None = None,
        reply_to: int | None = None, webhook_id: int | None = None, mention_everyone: bool | None = None,
    ) -> dict[str, Any]:
        """A person (alice by default) posts `content` in a channel, thread or DM channel
        (default #general): stored, then dispatched as MESSAGE_CREATE. Mentions written in the
        content (`<@id>`, `<@&id>`) are filled in unless given; `reply_to` is a message id."""
        channel = self.channel(channel_id or self.general_id)
        author = author or self.alice
        user_ids, role_ids = wire.mentioned_ids(content)
        data = wire.message(
            wire.snowflake(), channel, author, content,
            author_member=self.member_of(int(author["id"]), with_user=False)
            if webhook_id is None and channel.get("guild_id") and int(author["id"]) in self.member_roles else None,
            mentions=mentions if mentions is not None else [self._mention(u, channel) for u in user_ids if u in self.users],
            mention_roles=mention_roles if mention_roles is not None else role_ids,
            mention_everyone=("@everyone" in content) if mention_everyone is None else mention_everyone,
            reference={"message_id": reply_to} if reply_to else None, webhook_id=webhook_id,
        )
        if reply_to:  # Discord sends the replied-to message along (null when it was deleted)
            data["referenced_message"] = self.messages.get(int(reply_to))
        self._store(channel, data)
        self._dispatched_at[int(data["id"])] = time.monotonic()
        await self.gateway.dispatch("MESSAGE_CREATE", data)
        return data

    async def mention(self, text: str, **kw: Any) -> dict[str, Any]:
        """A person mentions the bot: the content is `<@bot> text`."""
        return await self.user_message(f"<@{self.bot_id}> {text}".rstrip(), **kw)

    async def bot_message(self, content: str, **kw: Any) -> dict[str, Any]:
        """Another bot (helperbot) posts."""
        return await self.user_message(content, author=self.other_bot, **kw)

    async def webhook_message(self, content: str, *, webhook_id: int | None = None, username: str = "Some Hook",
                              **kw: Any) -> dict[str, Any]:
        """A webhook (not ours unless `webhook_id` is one of ours) posts: author is the webhook."""
        webhook_id = webhook_id or wire.snowflake()
        author = wire.user(webhook_id, username, bot=True)
        return await self.user_message(content, author=author, webhook_id=webhook_id, **kw)

    async def dm(self, content: str, *, author: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """A person writes to the bot in their DM channel."""
        author = author or self.alice
        return await self.user_message(content, channel_id=int(self.dm_with(author)["id"]), author=author, **kw)

    async def thread_create(self, parent_id: int | None = None, name: str = "a thread", *,
                            owner: dict[str, Any] | None = None, from_message: int | None = None) -> dict[str, Any]:
        """A person starts a thread (from a message when `from_message`): THREAD_CREATE is dispatched."""
        data = self.add_thread(parent_id or self.general_id, name, thread_id=from_message,
                               owner_id=int((owner or self.alice)["id"]))
        await self.gateway.dispatch("THREAD_CREATE", {**data, "newly_created": True})
        return data

    def _new_interaction(self, type: int, data: dict[str, Any] | None, channel_id: int | None,
                         user: dict[str, Any] | None, message: dict[str, Any] | None = None) -> dict[str, Any]:
        channel = self.channel(channel_id or self.general_id)
        invoker = user or self.alice
        payload = wire.interaction(
            wire.snowflake(), "itok-" + secrets.token_hex(12), type=type, application_id=self.application_id,
            channel=channel, invoker=invoker,
            invoker_member=self.member_of(int(invoker["id"])) if channel.get("guild_id") else None,
            data=data, message=message,
        )
        if "member" in payload:
            payload["member"]["permissions"] = str(self.permissions_of(int(invoker["id"])))
        self.interactions[payload["token"]] = payload
        return payload

    def _command_id(self, name: str) -> str:
        for guild in (self.guild_id, None):
            for c in self.commands.get(guild, []):
                if c["name"] == name:
                    return c["id"]
        return str(wire.snowflake())

    async def slash_command(self, name: str, options: dict[str, Any] | None = None, *, channel_id: int | None = None,
                            user: dict[str, Any] | None = None, focused: str | None = None,
                            subcommand: str | None = None) -> dict[str, Any]:
        """A person runs `/name` with `options` ({name: value}); with `focused` (an option name) it is
        the autocomplete request (type 4) for that option instead. With `subcommand`, `/name
        subcommand` (the options nested in it, as Discord sends a group's). Returns the payload."""
        opts = [{"name": k, "type": wire.option_type(v), "value": v, **({"focused": True} if k == focused else {})}
                for k, v in (options or {}).items()]
        if subcommand is not None:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        channel = self.channel(channel_id or self.general_id)
        data: dict[str, Any] = {"id": self._command_id(name), "name": name, "type": 1, "options": opts}
        if channel.get("guild_id"):
            data["guild_id"] = channel["guild_id"]
        payload = self._new_interaction(4 if focused else 2, data, channel_id, user)
        await self._dispatch_interaction(payload)
        return payload

    async def click(self, message_id: int, custom_id: str, *, user: dict[str, Any] | None = None) -> dict[str, Any]:
        """A person clicks the button `custom_id` on a stored message (INTERACTION_CREATE type 3)."""
        message = self.messages[int(message_id)]
        payload = self._new_interaction(3, {"custom_id": custom_id, "component_type": 2},
                                        int(message["channel_id"]), user, message=message)
        await self._dispatch_interaction(payload)
        return payload

    async def _dispatch_interaction(self, payload: dict[str, Any]) -> None:
        self._dispatched_at[int(payload["id"])] = time.monotonic()
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
