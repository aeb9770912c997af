"""The local Discord's world: one guild (text channels, roles with the bot's managed role,
members), people and another bot, threads, DMs, messages and webhooks, as discord.com keeps
them. `DiscordServer` (tests.servers.discord_api) serves it over REST and the gateway; changes
made here are announced through `self.gateway` (CHANNEL_UPDATE, THREAD_UPDATE, MESSAGE_CREATE...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.servers import discord_payloads as wire

if TYPE_CHECKING:
    from tests.servers.discord_gateway import Gateway


class DiscordError(Exception):
    """An error answer, shaped as Discord shapes them: {"code": ..., "message": ...}."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None):
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def invalid_form(errors: dict[str, Any]) -> DiscordError:
    """400 code 50035, with Discord's nested `errors` (discord.py puts them in the exception text)."""
    return DiscordError(400, 50035, "Invalid Form Body", errors)


def unknown(what: str, code: int) -> DiscordError:
    return DiscordError(404, code, f"Unknown {what}")


MISSING_PERMISSIONS = (403, 50013, "Missing Permissions")
THREAD_ARCHIVED = (400, 50083, "Thread is archived")
THREAD_EXISTS = (400, 160004, "A thread has already been created for this message")
ALREADY_ACKNOWLEDGED = (400, 40060, "Interaction has already been acknowledged.")


class DiscordWorld:
    """The state. Ids: `guild_id`, `general_id` / `random_id` (text channels), `bot_id` (= the
    application id), `bot_role_id` (its managed role), `admin_role_id` ("Orchestra Admins", bob),
    `manager_role_id` (Manage Server, carol); users `alice`, `bob`, `carol`, `owner` (olivia, owns
    the guild), `other_bot` (dicts, as Discord sends users). `add_user`, `add_channel`,
    `add_thread`, `dm_with`, `add_role`, `give_role` extend it."""

    gateway: Gateway

    def __init__(self) -> None:
        self.channels: dict[int, dict[str, Any]] = {}  # text channels, threads, DMs
        self.messages: dict[int, dict[str, Any]] = {}  # every message, by id
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.deleted_webhooks: set[int] = set()
        self._webhook_denied: set[int] = set()
        self._history_denied: set[int] = set()
        self._build_world()

    # --- the world --------------------------------------------------------------------------

    def _build_world(self) -> None:
        self.application_id = wire.snowflake()
        self.bot = wire.user(self.application_id, "orchestra", bot=True)  # a bot's user id is its app id
        self.bot_id = self.application_id
        self.guild_id = wire.snowflake()
        self.bot_role_id = wire.snowflake()
        self.admin_role_id = wire.snowflake()
        self.manager_role_id = wire.snowflake()
        self.users: dict[int, dict[str, Any]] = {self.bot_id: self.bot}
        self.alice = self.add_user("alice")
        self.bob = self.add_user("bob")
        self.carol = self.add_user("carol")
        self.other_bot = self.add_user("helperbot", bot=True)
        self.roles = [
            wire.role(self.guild_id, "@everyone", wire.EVERYONE_PERMISSIONS),
            wire.role(self.bot_role_id, "Orchestra", wire.BOT_PERMISSIONS, position=3, bot_id=self.bot_id),
            wire.role(self.admin_role_id, "Orchestra Admins", wire.EVERYONE_PERMISSIONS, position=2),
            wire.role(self.manager_role_id, "Managers", wire.EVERYONE_PERMISSIONS | wire.MANAGE_GUILD, position=1),
        ]
        self.member_roles: dict[int, list[int]] = {
            self.bot_id: [self.bot_role_id],
            int(self.alice["id"]): [],
            int(self.bob["id"]): [self.admin_role_id],
            int(self.carol["id"]): [self.manager_role_id],
            int(self.other_bot["id"]): [],
        }
        self.owner = self.add_user("olivia")  # owns the guild: every permission, no roles
        general = self.add_channel("general")
        self.general_id = int(general["id"])
        self.random_id = int(self.add_channel("random")["id"])

    def add_user(self, name: str, *, bot: bool = False) -> dict[str, Any]:
        data = wire.user(wire.snowflake(), name, bot=bot)
        self.users[int(data["id"])] = data
        if hasattr(self, "member_roles"):
            self.member_roles[int(data["id"])] = []
        return data

    def add_channel(self, name: str) -> dict[str, Any]:
        """A new text channel in the guild (before the bot connects, or announced with CHANNEL_CREATE)."""
        position = sum(1 for c in self.channels.values() if c["type"] == wire.GUILD_TEXT)
        data = wire.text_channel(wire.snowflake(), self.guild_id, name, position=position)
        self.channels[int(data["id"])] = data
        if hasattr(self, "gateway") and self.gateway.ready:
            self.gateway.dispatch_nowait("CHANNEL_CREATE", data)
        return data

    def add_thread(self, parent_id: int, name: str, *, archived: bool = False, thread_id: int | None = None,
                   owner_id: int | None = None) -> dict[str, Any]:
        """A thread that already exists (sent in GUILD_CREATE's `threads` when active)."""
        data = wire.thread_channel(thread_id or wire.snowflake(), self.channels[parent_id], name,
                                   owner_id or int(self.alice["id"]), archived=archived)
        self.channels[int(data["id"])] = data
        return data

    def dm_with(self, user: dict[str, Any]) -> dict[str, Any]:
        """The DM channel between the bot and `user` (created once)."""
        for c in self.channels.values():
            if c["type"] == wire.DM and c["recipients"][0]["id"] == user["id"]:
                return c
        data = wire.dm_channel(wire.snowflake(), user)
        self.channels[int(data["id"])] = data
        return data

    def member_of(self, user_id: int, *, with_user: bool = True) -> dict[str, Any]:
        return wire.member(self.users[user_id], self.member_roles.get(user_id, []), with_user=with_user)

    def permissions_of(self, user_id: int) -> int:
        """Guild-level permissions, as an interaction's `member.permissions` carries them."""
        if user_id == int(self.owner["id"]):
            return (1 << 53) - 1
        granted = 0
        for r in self.roles:
            if int(r["id"]) == self.guild_id or int(r["id"]) in self.member_roles.get(user_id, []):
                granted |= int(r["permissions"])
        return granted

    def add_role(self, name: str, permissions: int = wire.EVERYONE_PERMISSIONS) -> int:
        """A new role (GUILD_ROLE_CREATE when connected); returns its id."""
        data = wire.role(wire.snowflake(), name, permissions, position=len(self.roles))
        self.roles.append(data)
        if self.gateway.ready:
            self.gateway.dispatch_nowait("GUILD_ROLE_CREATE", {"guild_id": str(self.guild_id), "role": data})
        return int(data["id"])

    def give_role(self, user: dict[str, Any], role_id: int) -> None:
        """`user` gets the role (seen in later messages' and interactions' member data)."""
        self.member_roles.setdefault(int(user["id"]), []).append(int(role_id))

    def guild_payload(self) -> dict[str, Any]:
        """GUILD_CREATE's data: roles, members (the bot with its role), channels and active threads."""
        members = [self.member_of(uid) for uid in self.member_roles]
        texts = [c for c in self.channels.values() if c["type"] == wire.GUILD_TEXT]
        threads = [c for c in self.channels.values()
                   if c["type"] in (wire.PUBLIC_THREAD, wire.PRIVATE_THREAD) and not c["thread_metadata"]["archived"]]
        return {
            "id": str(self.guild_id), "name": "Orchestra Test", "icon": None, "splash": None,
            "discovery_splash": None, "owner_id": str(self.owner["id"]), "afk_channel_id": None,
            "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 1,
            "explicit_content_filter": 0, "features": [], "mfa_level": 0, "application_id": None,
            "system_channel_id": str(self.general_id), "system_channel_flags": 0, "rules_channel_id": None,
            "vanity_url_code": None, "description": None, "banner": None, "premium_tier": 0,
            "premium_subscription_count": 0, "preferred_locale": "en-US", "public_updates_channel_id": None,
            "nsfw_level": 0, "premium_progress_bar_enabled": False, "max_members": 500000,
            "roles": self.roles, "emojis": [], "stickers": [], "joined_at": "2024-01-01T00:00:00+00:00",
            "large": False, "unavailable": False, "member_count": len(members), "voice_states": [],
            "members": members, "channels": texts, "threads": threads, "presences": [],
            "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": [],
        }

    # --- state switches (failures people cause) --------------------------------------------

    def delete_webhook(self, webhook_id: int) -> None:
        """Someone deleted the webhook: every use of it now answers 404 code 10015 Unknown Webhook."""
        self.webhooks.pop(int(webhook_id), None)
        self.deleted_webhooks.add(int(webhook_id))

    def deny_manage_webhooks(self, channel_id: int) -> None:
        """The bot loses Manage Webhooks in the channel (an overwrite on its role, CHANNEL_UPDATE sent):
        listing or creating webhooks there answers 403 code 50013."""
        self._webhook_denied.add(int(channel_id))
        channel = self.channels[int(channel_id)]
        channel["permission_overwrites"] = [
            {"id": str(self.bot_role_id), "type": 0, "allow": "0", "deny": str(wire.MANAGE_WEBHOOKS)}
        ]
        if self.gateway.ready:
            self.gateway.dispatch_nowait("CHANNEL_UPDATE", channel)

    def deny_read_history(self, channel_id: int) -> None:
        """The bot loses Read Message History in the channel (an overwrite on its role, CHANNEL_UPDATE
        sent): as on Discord, reading its history (or a thread's in it) then answers 200 with no
        messages, not an error."""
        self._history_denied.add(int(channel_id))
        channel = self.channels[int(channel_id)]
        channel["permission_overwrites"] = [
            {"id": str(self.bot_role_id), "type": 0, "allow": "0", "deny": str(wire.READ_MESSAGE_HISTORY)}
        ]
        if self.gateway.ready:
            self.gateway.dispatch_nowait("CHANNEL_UPDATE", channel)

    def history_denied(self, channel: dict[str, Any]) -> bool:
        return int(channel["id"]) in self._history_denied or int(channel.get("parent_id") or 0) in self._history_denied

    def delete_message(self, message_id: int) -> None:
        """Someone deleted the message (MESSAGE_DELETE sent): fetching or editing it answers 404 10008."""
        data = self.messages.pop(int(message_id), None)
        if data is None:
            raise unknown("Message", 10008)
        if self.gateway.ready:
            event = {"id": data["id"], "channel_id": data["channel_id"]}
            if "guild_id" in data:
                event["guild_id"] = data["guild_id"]
            self.gateway.dispatch_nowait("MESSAGE_DELETE", event)

    def archive_thread(self, thread_id: int, archived: bool = True) -> None:
        """Archive (or unarchive) a thread; posting into an archived one answers 400 code 50083."""
        thread = self.channels[int(thread_id)]
        thread["thread_metadata"]["archived"] = archived
        thread["thread_metadata"]["archive_timestamp"] = wire.iso_now()
        if self.gateway.ready:
            self.gateway.dispatch_nowait("THREAD_UPDATE", thread)

    def messages_in(self, channel_id: int) -> list[dict[str, Any]]:
        """The channel's (or thread's) messages as they now read, oldest first."""
        return sorted((m for m in self.messages.values() if m["channel_id"] == str(channel_id)), key=lambda m: int(m["id"]))

    # --- messages (shared by REST, interactions and the test helpers) -----------------------

    def create_message(self, channel_id: int, author: dict[str, Any], body: dict[str, Any], *,
                       webhook_id: int | None = None, type: int = 0, dispatch: bool = True,
                       extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store a message from a REST body (content, embeds, components, message_reference, flags)
        and dispatch MESSAGE_CREATE (ephemeral messages are not dispatched)."""
        channel = self.channel(channel_id)
        errors = wire.form_errors(body, webhook=webhook_id is not None and webhook_id != int(self.bot["id"]))
        if errors:
            raise invalid_form(errors)
        if channel.get("thread_metadata", {}).get("archived"):
            raise DiscordError(*THREAD_ARCHIVED)
        content = body.get("content") or ""
        user_ids, role_ids = wire.mentioned_ids(content)
        reference = body.get("message_reference")
        data = wire.message(
            wire.snowflake(), channel, author, content,
            author_member=self.member_of(int(author["id"]), with_user=False)
            if webhook_id is None and int(author["id"]) in self.member_roles and channel.get("guild_id") else None,
            mentions=[self._mention(uid, channel) for uid in user_ids if uid in self.users],
            mention_roles=role_ids, mention_everyone="@everyone" in content or "@here" in content,
            embeds=body.get("embeds"), components=body.get("components"),
            reference={"message_id": reference["message_id"]} if reference else None,
            webhook_id=webhook_id, flags=int(body.get("flags") or 0), type=type,
        )
        data.update(extra or {})
        self._store(channel, data)
        if dispatch and not int(data["flags"]) & 64:
            self.gateway.dispatch_nowait("MESSAGE_CREATE", data)
        return data

    def _mention(self, user_id: int, channel: dict[str, Any]) -> dict[str, Any]:
        mentioned = dict(self.users[user_id])
        if channel.get("guild_id") and user_id in self.member_roles:
            mentioned["member"] = self.member_of(user_id, with_user=False)
        return mentioned

    def _store(self, channel: dict[str, Any], data: dict[str, Any]) -> None:
        self.messages[int(data["id"])] = data
        channel["last_message_id"] = data["id"]
        if "thread_metadata" in channel:
            channel["message_count"] += 1
            channel["total_message_sent"] += 1

    def edit_message(self, message_id: int, body: dict[str, Any]) -> dict[str, Any]:
        data = self.messages.get(int(message_id))
        if data is None:
            raise unknown("Message", 10008)
        errors = wire.form_errors(body)
        if errors:
            raise invalid_form(errors)
        for key in ("content", "embeds", "components", "flags"):
            if key in body and body[key] is not None:
                data[key] = body[key]
        data["edited_timestamp"] = wire.iso_now()
        self.gateway.dispatch_nowait("MESSAGE_UPDATE", data)
        return data

    def channel(self, channel_id: int | str) -> dict[str, Any]:
        try:
            return self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise unknown("Channel", 10003) from None
