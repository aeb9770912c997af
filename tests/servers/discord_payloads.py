"""Discord's wire format, as the gateway and REST API v10 send it: the objects the local
Discord (`tests.servers.discord_api`) keeps and hands to discord.py.

Pure builders, no network. Ids are real snowflakes (a millisecond timestamp shifted left 22
bits), increasing, so discord.py's `created_at` and history paging (`before=`) behave.
"""

from __future__ import annotations

import itertools
import re
import time
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1420070400000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
MANAGE_WEBHOOKS = 1 << 29
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38

EVERYONE_PERMISSIONS = (
    VIEW_CHANNEL | SEND_MESSAGES | ADD_REACTIONS | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY
    | USE_APPLICATION_COMMANDS | CREATE_PUBLIC_THREADS | SEND_MESSAGES_IN_THREADS
)
#: What the invite link grants the bot's managed role: everything the adapter uses.
BOT_PERMISSIONS = EVERYONE_PERMISSIONS | MANAGE_WEBHOOKS | MANAGE_THREADS | MANAGE_MESSAGES

# Intents (https://discord.com/developers/docs/events/gateway#gateway-intents).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

# Channel types.
GUILD_TEXT = 0
DM = 1
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12

_counter = itertools.count(1)
_last = 0


def snowflake() -> int:
    """A fresh snowflake, greater than every one before it in this process."""
    global _last
    value = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_counter) & 0xFFF)
    _last = max(value, _last + 1)
    return _last


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


def user(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": None if bot else name.capitalize(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
        "flags": 0,
    }


def role(role_id: int, name: str, permissions: int, *, position: int = 0, bot_id: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": bot_id is not None,
        "mentionable": False,
        "flags": 0,
    }
    if bot_id is not None:
        data["tags"] = {"bot_id": str(bot_id)}
    return data


def member(user_data: dict[str, Any], roles: list[int], *, with_user: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "roles": [str(r) for r in roles],
        "nick": None,
        "avatar": None,
        "joined_at": "2024-01-01T00:00:00+00:00",
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
    }
    if with_user:
        data["user"] = user_data
    return data


def text_channel(channel_id: int, guild_id: int, name: str, *, position: int = 0) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": GUILD_TEXT,
        "guild_id": str(guild_id),
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "parent_id": None,
        "topic": None,
        "nsfw": False,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }


def thread_channel(
    thread_id: int, parent: dict[str, Any], name: str, owner_id: int, *, archived: bool = False,
    type: int = PUBLIC_THREAD, auto_archive_duration: int = 1440,
) -> dict[str, Any]:
    return {
        "id": str(thread_id),
        "type": type,
        "guild_id": parent["guild_id"],
        "parent_id": parent["id"],
        "owner_id": str(owner_id),
        "name": name,
        "last_message_id": None,
        "message_count": 0,
        "total_message_sent": 0,
        "member_count": 1,
        "rate_limit_per_user": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": archived,
            "auto_archive_duration": auto_archive_duration,
            "archive_timestamp": iso_now(),
            "locked": False,
            "create_timestamp": iso_now(),
        },
    }


def dm_channel(channel_id: int, recipient: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(channel_id), "type": DM, "last_message_id": None, "recipients": [recipient], "flags": 0}


_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


def mentioned_ids(content: str) -> tuple[list[int], list[int]]:
    """User ids and role ids written as mentions in `content` (as Discord parses them)."""
    users = list(dict.fromkeys(int(m) for m in _USER_MENTION.findall(content)))
    roles = list(dict.fromkeys(int(m) for m in _ROLE_MENTION.findall(content)))
    return users, roles


def message(
    message_id: int,
    channel: dict[str, Any],
    author: dict[str, Any],
    content: str,
    *,
    author_member: dict[str, Any] | None = None,
    mentions: list[dict[str, Any]] = (),  # type: ignore[assignment]
    mention_roles: list[int] = (),  # type: ignore[assignment]
    mention_everyone: bool = False,
    embeds: list[dict[str, Any]] | None = None,
    components: list[dict[str, Any]] | None = None,
    reference: dict[str, Any] | None = None,
    webhook_id: int | None = None,
    flags: int = 0,
    type: int = 0,
) -> dict[str, Any]:
    """A message object. `reference` is a message_reference ({message_id, channel_id, guild_id});
    a reply (type 19) when set and `type` is left at 0."""
    data: dict[str, Any] = {
        "id": str(message_id),
        "type": 19 if reference and type == 0 else type,
        "channel_id": channel["id"],
        "author": author,
        "content": content,
        "timestamp": iso_now(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": mention_everyone,
        "mentions": list(mentions),
        "mention_roles": [str(r) for r in mention_roles],
        "attachments": [],
        "embeds": embeds or [],
        "components": components or [],
        "pinned": False,
        "flags": flags,
    }
    if channel.get("guild_id"):
        data["guild_id"] = channel["guild_id"]
        if author_member is not None:
            data["member"] = author_member
    if webhook_id is not None:
        data["webhook_id"] = str(webhook_id)
    if reference:
        data["message_reference"] = {"type": 0, "channel_id": channel["id"], **{k: str(v) for k, v in reference.items()}}
        if channel.get("guild_id"):
            data["message_reference"].setdefault("guild_id", channel["guild_id"])
    return data


def option_type(value: Any) -> int:
    """The application command option type Discord uses for a Python value."""
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    return 3


def interaction(
    interaction_id: int,
    token: str,
    *,
    type: int,
    application_id: int,
    channel: dict[str, Any],
    invoker: dict[str, Any],
    invoker_member: dict[str, Any] | None,
    data: dict[str, Any] | None,
    message: dict[str, Any] | None = None,
    app_permissions: int = BOT_PERMISSIONS,
) -> dict[str, Any]:
    """An interaction as INTERACTION_CREATE carries it: type 2 command, 3 component, 4 autocomplete."""
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(application_id),
        "type": type,
        "token": token,
        "version": 1,
        "channel_id": channel["id"],
        "channel": channel,
        "app_permissions": str(app_permissions),
        "locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": channel.get("guild_id") or invoker["id"]},
        "attachment_size_limit": 10 * 1024 * 1024,
    }
    if data is not None:
        payload["data"] = data
    if channel.get("guild_id"):
        payload["guild_id"] = channel["guild_id"]
        payload["guild"] = {"id": channel["guild_id"], "locale": "en-US", "features": []}
        payload["guild_locale"] = "en-US"
        payload["member"] = {**(invoker_member or member(invoker, [])), "user": invoker, "permissions": str(EVERYONE_PERMISSIONS)}
        payload["context"] = 0
    else:
        payload["user"] = invoker
        payload["context"] = 1
    if message is not None:
        payload["message"] = message
    return payload


# --- Discord's limits on a message body (answered as 400 code 50035 Invalid Form Body) -------

def _too_long(limit: int) -> dict[str, Any]:
    return {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}]}


def form_errors(body: dict[str, Any], *, webhook: bool = False) -> dict[str, Any]:
    """The `errors` Discord answers for a message body past its limits ({} when it is fine):
    content 2,000; at most 10 embeds, 6,000 characters across them; title 256, description 4,096,
    25 fields (name 256, value 1,024), footer 2,048, author name 256; a webhook username 1-80
    characters without "discord" or "clyde"; a thread name 1-100."""
    errors: dict[str, Any] = {}
    content = body.get("content")
    if isinstance(content, str) and len(content) > 2000:
        errors["content"] = _too_long(2000)
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        errors["embeds"] = _too_long(10)
    total = 0
    for i, embed in enumerate(embeds[:10]):
        problems: dict[str, Any] = {}
        for key, limit in (("title", 256), ("description", 4096)):
            text = embed.get(key) or ""
            total += len(text)
            if len(text) > limit:
                problems[key] = _too_long(limit)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            problems["fields"] = _too_long(25)
        for j, f in enumerate(fields):
            total += len(f.get("name", "")) + len(f.get("value", ""))
            for key, limit in (("name", 256), ("value", 1024)):
                if len(f.get(key, "")) > limit:
                    problems.setdefault("fields", {}).setdefault(str(j), {})[key] = _too_long(limit)
        for part, limit in (("footer", 2048), ("author", 256)):
            text = (embed.get(part) or {}).get("text" if part == "footer" else "name") or ""
            total += len(text)
            if len(text) > limit:
                problems[part] = {"text" if part == "footer" else "name": _too_long(limit)}
        if problems:
            errors.setdefault("embeds", {})[str(i)] = problems
    if total > 6000:
        errors.setdefault("embeds", {})["_errors"] = [
            {"code": "MAX_EMBED_SIZE_EXCEEDED", "message": "Embed size exceeds maximum size of 6000"}]
    username = body.get("username")
    if webhook and username is not None:
        if not 1 <= len(username) <= 80:
            errors["username"] = {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 80 in length."}]}
        elif "discord" in username.lower() or "clyde" in username.lower():
            errors["username"] = {"_errors": [{"code": "USERNAME_INVALID_CONTAINS", "message": "Username cannot contain \"discord\""}]}
    return errors


def thread_name_errors(name: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        return {"name": {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 100 in length."}]}}
    return {}
