"""A tiny local Discord for the start-up tests of `adapters/discord/app.py`: login, command sync
and a gateway that says HELLO, READY, GUILD_CREATE, RESUMED (or refuses the Message Content intent).

Stop-gap until the shared stand-in (`tests/servers/discord_api.py`) is merged; the adapter-level
tests use that one. `ensure_parts()` puts minimal listeners/outbox modules in place ONLY while the
real `adapters.discord.listeners` / `outbox` are not in this branch yet.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import types
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

GOOD_TOKEN = "discord-test-token-abcdef"
BOT_ID, APP_ID, GUILD_ID = "1001", "2002", "3003"
MESSAGE_CONTENT = 1 << 15


def ensure_parts() -> None:
    """Minimal stand-ins for the listeners and the outbox, when the real ones are not here yet."""
    for name, cls_name in (("listeners", "DiscordListeners"), ("outbox", "DiscordOutbox")):
        module = f"adapters.discord.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            fake = types.ModuleType(module)
            fake.__dict__[cls_name] = _PlaceholderListeners if name == "listeners" else _PlaceholderOutbox
            fake.__dict__["EnginePort"] = Any
            sys.modules[module] = fake


class _PlaceholderOutbox:
    def __init__(self, client: Any, *args: Any, **kwargs: Any):
        self.client = client


class _PlaceholderListeners:
    def __init__(self, engine: Any, settings: Any, outbox: Any):
        self.engine, self.settings, self.outbox = engine, settings, outbox
        self.messages: list[Any] = []

    def install(self, client: Any, tree: Any) -> None:
        from discord import app_commands

        @app_commands.command(name="personas", description="List the personas")
        async def personas(interaction: Any) -> None:  # pragma: no cover - never invoked here
            pass

        tree.add_command(personas)

    async def on_message(self, message: Any) -> None:
        self.messages.append(message)

    async def idle(self) -> None:
        pass


def _json(data: Any, status: int = 200) -> web.Response:
    """discord.py reads a body as JSON only when the content type is exactly application/json."""
    response = web.Response(body=json.dumps(data).encode(), status=status)
    response.headers["Content-Type"] = "application/json"
    return response


def _user() -> dict:
    return {"id": BOT_ID, "username": "orchestra", "discriminator": "0", "global_name": None, "avatar": None, "bot": True}


@dataclass
class DiscordStub:
    """Started with `await stub.start()`; `api_url`/`gateway_url` for the settings."""

    refuse_message_content: bool = False
    guilds: list[str] = field(default_factory=lambda: [GUILD_ID])
    requests: list[tuple[str, str]] = field(default_factory=list)
    identifies: list[dict] = field(default_factory=list)
    resumes: int = 0
    refuse_commands: bool = False  # answer a command sync with 400 50035 (Invalid Form Body)
    drop_after_ready: bool = False  # close the first gateway connection (4000) once READY is sent
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> "DiscordStub":
        app = web.Application()
        app.router.add_get("/api/v10/users/@me", self.me)
        app.router.add_get("/api/v10/oauth2/applications/@me", self.application)
        app.router.add_put("/api/v10/applications/{app}/commands", self.sync)
        app.router.add_put("/api/v10/applications/{app}/guilds/{guild}/commands", self.sync)
        app.router.add_get("/gateway", self.gateway)
        app.router.add_route("*", "/{tail:.*}", self.unknown)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _authorised(self, request: web.Request) -> bool:
        self.requests.append((request.method, request.path))
        return request.headers.get("Authorization") == f"Bot {GOOD_TOKEN}"

    async def me(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        return _json(_user())

    async def application(self, request: web.Request) -> web.Response:
        self._authorised(request)
        return _json({
            "id": APP_ID, "name": "Orchestra", "description": "", "icon": None, "bot_public": True,
            "bot_require_code_grant": False, "owner": _user(), "verify_key": "0" * 64, "flags": 0,
        })

    async def sync(self, request: web.Request) -> web.Response:
        self._authorised(request)
        guild = request.match_info.get("guild")
        if guild is not None and guild not in self.guilds:
            return _json({"message": "Missing Access", "code": 50001}, status=403)
        if self.refuse_commands:
            return _json({"message": "Invalid Form Body", "code": 50035,
                          "errors": {"0": {"name": {"_errors": [{"code": "X", "message": "bad"}]}}}}, status=400)
        commands = await request.json()
        for i, c in enumerate(commands):
            c.update(id=str(9000 + i), application_id=APP_ID, version="1", default_member_permissions=None)
            c.setdefault("options", [])
            if guild:
                c["guild_id"] = guild
        return _json(commands)

    async def unknown(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}, "s": None, "t": None}))
        seq = 0

        async def dispatch(event: str, data: dict) -> None:
            nonlocal seq
            seq += 1
            await ws.send_str(json.dumps({"op": 0, "t": event, "s": seq, "d": data}))

        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            payload = json.loads(msg.data)
            op = payload.get("op")
            if op == 1:
                await ws.send_str(json.dumps({"op": 11, "d": None}))
            elif op == 2:
                self.identifies.append(payload["d"])
                if self.refuse_message_content and payload["d"].get("intents", 0) & MESSAGE_CONTENT:
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                await dispatch("READY", {
                    "v": 10, "user": _user(), "session_id": "session-1", "shard": [0, 1],
                    "resume_gateway_url": self.gateway_url, "application": {"id": APP_ID, "flags": 0},
                    "guilds": [{"id": g, "unavailable": True} for g in self.guilds],
                })
                for g in self.guilds:
                    await dispatch("GUILD_CREATE", {
                        "id": g, "name": f"Server {g}", "owner_id": "1", "member_count": 2, "channels": [],
                        "threads": [], "members": [], "roles": [], "emojis": [], "stickers": [], "features": [],
                        "unavailable": False, "icon": None, "afk_timeout": 300, "verification_level": 0,
                        "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0,
                        "nsfw_level": 0, "premium_tier": 0, "preferred_locale": "en-US", "large": False,
                    })
                if self.drop_after_ready:
                    self.drop_after_ready = False
                    await asyncio.sleep(0.2)
                    await ws.close(code=4000, message=b"Unknown error")
                    break
            elif op == 6:
                self.resumes += 1
                await dispatch("RESUMED", {})
        return ws
