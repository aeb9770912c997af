"""The local Discord's REST routes (API v10), answering as discord.com does.

Each handler takes (request, parsed JSON body) and returns the JSON answer (None: 204) or raises
`DiscordError`. `DiscordServer` records every request and applies the failure switches first.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.servers import discord_payloads as wire
from tests.servers.discord_api import Callback
from tests.servers.discord_world import (
    ALREADY_ACKNOWLEDGED,
    MISSING_PERMISSIONS,
    THREAD_EXISTS,
    DiscordError,
    invalid_form,
    unknown,
)

if TYPE_CHECKING:
    from tests.servers.discord_api import DiscordServer


def _components_allowed(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    """Discord ignores a webhook's components unless the request says `with_components=true`."""
    if request.query.get("with_components", "").lower() in ("1", "true"):
        return body
    return {k: v for k, v in body.items() if k != "components"}


def routes(s: DiscordServer) -> list[tuple[str, str, Any]]:
    def p(request: web.Request, name: str) -> str:
        return request.match_info[name]

    # --- identity and application ---------------------------------------------------------

    def me(request: web.Request, body: Any) -> Any:
        return {**s.bot, "verified": True, "mfa_enabled": False, "locale": "en-US", "email": None}

    def gateway_bot(request: web.Request, body: Any) -> Any:
        return {"url": s.gateway_url, "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}

    def application(request: web.Request, body: Any) -> Any:
        return {
            "id": str(s.application_id), "name": "Orchestra", "icon": None, "description": "",
            "bot_public": True, "bot_require_code_grant": False, "owner": s.carol, "team": None,
            "verify_key": "0" * 64, "flags": 0, "summary": "", "bot": s.bot, "tags": [],
            "interactions_endpoint_url": None, "approximate_guild_count": 1,
            "redirect_uris": [], "install_params": None, "integration_types_config": {},
        }

    def put_commands(request: web.Request, body: Any) -> Any:
        guild = request.match_info.get("guild_id")
        if guild and int(guild) != s.guild_id:
            raise DiscordError(403, 50001, "Missing Access")  # a guild the bot is not in
        saved = []
        for c in body or []:
            command = {
                "id": str(wire.snowflake()), "application_id": str(s.application_id), "version": str(wire.snowflake()),
                "type": 1, "description": "", "options": [], "default_member_permissions": None,
                "dm_permission": True, "nsfw": False, "contexts": None, "integration_types": [0], **c,
            }
            if guild:
                command["guild_id"] = guild
            saved.append(command)
        s.commands[int(guild) if guild else None] = saved
        return saved

    def get_commands(request: web.Request, body: Any) -> Any:
        guild = request.match_info.get("guild_id")
        return s.commands.get(int(guild) if guild else None, [])

    # --- guilds -----------------------------------------------------------------------------

    def guild_of(request: web.Request) -> None:
        if int(p(request, "guild_id")) != s.guild_id:
            raise unknown("Guild", 10004)

    def get_member(request: web.Request, body: Any) -> Any:
        guild_of(request)
        uid = int(p(request, "user_id"))
        if uid not in s.member_roles:
            raise unknown("Member", 10007)
        return s.member_of(uid)

    def get_guild(request: web.Request, body: Any) -> Any:
        guild_of(request)
        data = s.guild_payload()
        for k in ("members", "channels", "threads", "presences", "voice_states"):
            data.pop(k)
        return data

    def guild_channels(request: web.Request, body: Any) -> Any:
        guild_of(request)
        return [c for c in s.channels.values() if c["type"] == wire.GUILD_TEXT]

    # --- channels and messages --------------------------------------------------------------

    def get_channel(request: web.Request, body: Any) -> Any:
        return s.channel(p(request, "channel_id"))

    def patch_channel(request: web.Request, body: Any) -> Any:
        channel = s.channel(p(request, "channel_id"))
        body = body or {}
        if "name" in body:
            channel["name"] = body["name"]
        meta = channel.get("thread_metadata")
        if meta is not None:
            for key in ("archived", "locked", "auto_archive_duration"):
                if key in body:
                    meta[key] = body[key]
            if "archived" in body:
                meta["archive_timestamp"] = wire.iso_now()
            s.gateway.dispatch_nowait("THREAD_UPDATE", channel)
        else:
            s.gateway.dispatch_nowait("CHANNEL_UPDATE", channel)
        return channel

    def post_message(request: web.Request, body: Any) -> Any:
        return s.create_message(int(s.channel(p(request, "channel_id"))["id"]), s.bot, body or {})

    def get_message(request: web.Request, body: Any) -> Any:
        s.channel(p(request, "channel_id"))
        data = s.messages.get(int(p(request, "message_id")))
        if data is None or data["channel_id"] != p(request, "channel_id"):
            raise unknown("Message", 10008)
        return data

    def patch_message(request: web.Request, body: Any) -> Any:
        data = get_message(request, body)
        if data["author"]["id"] != s.bot["id"]:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        return s.edit_message(int(data["id"]), body or {})

    def delete_message(request: web.Request, body: Any) -> Any:
        data = get_message(request, body)
        if data["author"]["id"] != s.bot["id"] and not s.permissions_of(s.bot_id) & wire.MANAGE_MESSAGES:
            raise DiscordError(*MISSING_PERMISSIONS)
        s.delete_message(int(data["id"]))
        return None

    def history(request: web.Request, body: Any) -> Any:
        if s.history_denied(s.channel(p(request, "channel_id"))):
            return []  # Discord: "missing READ_MESSAGE_HISTORY ... then no messages will be returned"
        q = request.query
        limit = max(1, min(100, int(q.get("limit", 50))))
        found = s.messages_in(int(p(request, "channel_id")))
        if "before" in q:
            found = [m for m in found if int(m["id"]) < int(q["before"])]
        if "after" in q:
            found = [m for m in found if int(m["id"]) > int(q["after"])][:limit]
        return list(reversed(found))[:limit]

    def typing(request: web.Request, body: Any) -> Any:
        s.channel(p(request, "channel_id"))
        return None

    def get_user(request: web.Request, body: Any) -> Any:
        data = s.users.get(int(p(request, "user_id")))
        if data is None:
            raise unknown("User", 10013)
        return data

    def create_dm(request: web.Request, body: Any) -> Any:
        uid = int(body["recipient_id"])
        if uid not in s.users:
            raise unknown("User", 10013)
        return s.dm_with(s.users[uid])

    # --- threads ----------------------------------------------------------------------------

    async def thread_from_message(request: web.Request, body: Any) -> Any:
        channel = s.channel(p(request, "channel_id"))
        mid = int(p(request, "message_id"))
        message = s.messages.get(mid)
        if message is None or message["channel_id"] != channel["id"]:
            raise unknown("Message", 10008)
        if mid in s.channels:
            raise DiscordError(*THREAD_EXISTS)
        return await _new_thread(channel, body or {}, thread_id=mid)

    async def thread_without_message(request: web.Request, body: Any) -> Any:
        channel = s.channel(p(request, "channel_id"))
        return await _new_thread(channel, body or {}, thread_id=None)

    async def _new_thread(channel: dict[str, Any], body: dict[str, Any], thread_id: int | None) -> Any:
        errors = wire.thread_name_errors(body.get("name"))
        if errors:
            raise invalid_form(errors)
        if channel["type"] != wire.GUILD_TEXT:
            raise DiscordError(400, 50024, "Cannot execute action on this channel type")
        thread = wire.thread_channel(thread_id or wire.snowflake(), channel, body["name"], s.bot_id,
                                     type=int(body.get("type") or wire.PUBLIC_THREAD),
                                     auto_archive_duration=int(body.get("auto_archive_duration") or 1440))
        s.channels[int(thread["id"])] = thread
        if thread_id is not None:
            s.messages[thread_id]["thread"] = thread
        await s.gateway.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        if thread_id is None:
            # As Discord does: a thread not started from a message leaves a system message
            # (type 18, THREAD_CREATED) in the parent channel, dispatched like any other.
            s.create_message(int(channel["id"]), s.bot, {"content": thread["name"]}, type=18, extra={
                "message_reference": {"type": 0, "channel_id": thread["id"], "guild_id": thread["guild_id"]}})
        return thread

    # --- webhooks ---------------------------------------------------------------------------

    def channel_webhooks(request: web.Request, body: Any) -> Any:
        channel = s.channel(p(request, "channel_id"))
        if int(channel["id"]) in s._webhook_denied:
            raise DiscordError(*MISSING_PERMISSIONS)
        return [w for w in s.webhooks.values() if w["channel_id"] == channel["id"]]

    def guild_webhooks(request: web.Request, body: Any) -> Any:
        guild_of(request)  # Discord asks for Manage Webhooks server-wide (channel overwrites aside)
        if not s.permissions_of(s.bot_id) & wire.MANAGE_WEBHOOKS:
            raise DiscordError(*MISSING_PERMISSIONS)
        return list(s.webhooks.values())

    def create_webhook(request: web.Request, body: Any) -> Any:
        channel = s.channel(p(request, "channel_id"))
        if channel["type"] != wire.GUILD_TEXT:
            raise DiscordError(400, 50024, "Cannot execute action on this channel type")
        if int(channel["id"]) in s._webhook_denied:
            raise DiscordError(*MISSING_PERMISSIONS)
        hook = {
            "id": str(wire.snowflake()), "type": 1, "guild_id": channel["guild_id"], "channel_id": channel["id"],
            "user": s.bot, "name": (body or {}).get("name") or "Captain Hook", "avatar": None,
            "token": "whtok-" + secrets.token_hex(16), "application_id": str(s.application_id),
        }
        s.webhooks[int(hook["id"])] = hook
        return hook

    def webhook_of(request: web.Request) -> dict[str, Any]:
        wid = int(p(request, "webhook_id"))
        hook = s.webhooks.get(wid)
        if hook is None:
            raise unknown("Webhook", 10015)
        if "webhook_token" in request.match_info and request.match_info["webhook_token"] != hook["token"]:
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        return hook

    def get_webhook(request: web.Request, body: Any) -> Any:
        return webhook_of(request)

    def delete_webhook(request: web.Request, body: Any) -> Any:
        s.delete_webhook(int(webhook_of(request)["id"]))
        return None

    def target_channel(hook: dict[str, Any], request: web.Request) -> int:
        thread_id = request.query.get("thread_id")
        if not thread_id:
            return int(hook["channel_id"])
        thread = s.channels.get(int(thread_id))
        if thread is None or thread.get("parent_id") != hook["channel_id"]:
            raise unknown("Channel", 10003)
        return int(thread_id)

    def execute(request: web.Request, body: Any) -> Any:
        if int(p(request, "webhook_id")) == s.application_id and p(request, "webhook_token") in s.interactions:
            return followup(request, body)
        hook = webhook_of(request)
        body = _components_allowed(request, body or {})
        author = wire.user(int(hook["id"]), body.get("username") or hook["name"], bot=True)
        author["avatar"] = None
        data = s.create_message(target_channel(hook, request), author, body, webhook_id=int(hook["id"]))
        s._identities[int(data["id"])] = {"username": author["username"], "avatar_url": body.get("avatar_url")}
        if request.query.get("wait", "").lower() in ("true", "1"):
            return data
        return None

    def webhook_message(request: web.Request, hook: dict[str, Any]) -> dict[str, Any]:
        data = s.messages.get(int(p(request, "message_id")))
        if data is None or data.get("webhook_id") != hook["id"] or data["channel_id"] != str(target_channel(hook, request)):
            raise unknown("Message", 10008)
        return data

    def get_webhook_message(request: web.Request, body: Any) -> Any:
        if int(p(request, "webhook_id")) == s.application_id and p(request, "webhook_token") in s.interactions:
            return interaction_message(request)
        return webhook_message(request, webhook_of(request))

    def delete_webhook_message(request: web.Request, body: Any) -> Any:
        if int(p(request, "webhook_id")) == s.application_id and p(request, "webhook_token") in s.interactions:
            s.delete_message(int(interaction_message(request)["id"]))
        else:
            s.delete_message(int(webhook_message(request, webhook_of(request))["id"]))
        return None

    def patch_webhook_message(request: web.Request, body: Any) -> Any:
        if int(p(request, "webhook_id")) == s.application_id and p(request, "webhook_token") in s.interactions:
            return s.edit_message(int(interaction_message(request)["id"]), body or {})
        data = webhook_message(request, webhook_of(request))
        return s.edit_message(int(data["id"]), _components_allowed(request, body or {}))

    # --- interactions -----------------------------------------------------------------------

    def interaction_of(token: str) -> dict[str, Any]:
        payload = s.interactions.get(token)
        if payload is None:
            raise unknown("interaction", 10062)
        return payload

    def callback(request: web.Request, body: Any) -> Any:
        at = time.monotonic()
        payload = interaction_of(p(request, "webhook_token"))
        if payload["id"] != p(request, "webhook_id"):
            raise unknown("interaction", 10062)
        token = payload["token"]
        body = body or {}
        kind = int(body.get("type", 0))
        if token in s._answered:
            raise DiscordError(*ALREADY_ACKNOWLEDGED)
        sent = s.dispatched_at.get(int(payload["id"]))
        if sent is not None and at - sent > s.interaction_deadline:
            raise unknown("interaction", 10062)  # Discord forgets an interaction not answered in 3 s
        s.callbacks.append(Callback(int(payload["id"]), kind, body.get("data"), at, s.dispatched_at.get(int(payload["id"])),
                                    request.get("arrived")))
        message: dict[str, Any] | None = None
        channel_id = int(payload["channel_id"])
        data = body.get("data") or {}
        if kind == 4:
            message = s.create_message(channel_id, s.bot, data, webhook_id=s.application_id, type=20)
        elif kind == 5:
            message = s.create_message(channel_id, s.bot, {"flags": 128 | int(data.get("flags") or 0)},
                                       webhook_id=s.application_id, type=20)
        elif kind == 7 and "message" in payload:
            message = s.edit_message(int(payload["message"]["id"]), data)
        s._answered[token] = int(message["id"]) if message is not None and kind in (4, 5) else None
        answer: dict[str, Any] = {"interaction": {
            "id": payload["id"], "type": payload["type"],
            "response_message_id": message["id"] if message else None,
            "response_message_loading": kind == 5, "response_message_ephemeral": bool(int(data.get("flags") or 0) & 64),
        }}
        if message is not None:
            answer["resource"] = {"type": kind, "message": message}
        # Discord sends the callback resource back only when asked (`?with_response=true`)
        return answer if request.query.get("with_response", "").lower() in ("1", "true") else None

    def interaction_message(request: web.Request) -> dict[str, Any]:
        token = p(request, "webhook_token")
        interaction_of(token)
        mid = p(request, "message_id")
        if mid == "@original":
            original = s._answered.get(token)
            if original is None:
                raise unknown("Message", 10008)
            return s.messages[original]
        data = s.messages.get(int(mid))
        if data is None:
            raise unknown("Message", 10008)
        return data

    def followup(request: web.Request, body: Any) -> Any:
        payload = interaction_of(p(request, "webhook_token"))
        if payload["token"] not in s._answered:
            raise unknown("Webhook", 10015)  # Discord: follow-ups need an acknowledged interaction
        original = s.messages.get(s._answered[payload["token"]] or 0)
        if original is not None and int(original["flags"]) & 128:
            # As Discord does: the first follow-up after a "thinking" defer replaces that message.
            original["flags"] = int(original["flags"]) & ~128
            return s.edit_message(int(original["id"]), body or {})
        return s.create_message(int(payload["channel_id"]), s.bot, body or {}, webhook_id=s.application_id)

    return [
        ("GET", "/users/@me", me),
        ("POST", "/users/@me/channels", create_dm),
        ("GET", "/users/{user_id}", get_user),
        ("GET", "/gateway", gateway_bot),
        ("GET", "/gateway/bot", gateway_bot),
        ("GET", "/oauth2/applications/@me", application),
        ("GET", "/applications/@me", application),
        ("PUT", "/applications/{application_id}/commands", put_commands),
        ("GET", "/applications/{application_id}/commands", get_commands),
        ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", put_commands),
        ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", get_commands),
        ("GET", "/guilds/{guild_id}", get_guild),
        ("GET", "/guilds/{guild_id}/channels", guild_channels),
        ("GET", "/guilds/{guild_id}/members/{user_id}", get_member),
        ("GET", "/guilds/{guild_id}/webhooks", guild_webhooks),
        ("GET", "/channels/{channel_id}", get_channel),
        ("PATCH", "/channels/{channel_id}", patch_channel),
        ("GET", "/channels/{channel_id}/messages", history),
        ("POST", "/channels/{channel_id}/messages", post_message),
        ("GET", "/channels/{channel_id}/messages/{message_id}", get_message),
        ("PATCH", "/channels/{channel_id}/messages/{message_id}", patch_message),
        ("DELETE", "/channels/{channel_id}/messages/{message_id}", delete_message),
        ("POST", "/channels/{channel_id}/messages/{message_id}/threads", thread_from_message),
        ("POST", "/channels/{channel_id}/threads", thread_without_message),
        ("POST", "/channels/{channel_id}/typing", typing),
        ("GET", "/channels/{channel_id}/webhooks", channel_webhooks),
        ("POST", "/channels/{channel_id}/webhooks", create_webhook),
        ("GET", "/webhooks/{webhook_id}", get_webhook),
        ("DELETE", "/webhooks/{webhook_id}", delete_webhook),
        ("GET", "/webhooks/{webhook_id}/{webhook_token}", get_webhook),
        ("POST", "/webhooks/{webhook_id}/{webhook_token}", execute),
        ("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", get_webhook_message),
        ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", patch_webhook_message),
        ("DELETE", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", delete_webhook_message),
        ("POST", "/interactions/{webhook_id}/{webhook_token}/callback", callback),
    ]
