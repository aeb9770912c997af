"""A local Discord: REST API v10 and the gateway websocket, for discord.py's real client.

`DiscordServer` listens on 127.0.0.1 (random port). It keeps a small world (one guild with
text channels, a bot with its managed role, people, threads, DMs, messages, webhooks), answers
the REST routes discord.py calls the way discord.com does (JSON bodies, `{"code", "message"}`
errors, 429 with `Retry-After`, 400 50035 past Discord's length limits), records every request,
and runs a gateway session (HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME with
replay of what was missed, events filtered by intents). Every message created through REST is
dispatched back as MESSAGE_CREATE, as Discord does, so a bot sees its own and its webhooks' posts.

    async with local_discord(heartbeat_interval=200) as server:      # or the discord_server fixture
        async with connected(discord.Client(intents=...), server) as client:
            message = await server.mention("sophia why?")            # MESSAGE_CREATE from alice
            await server.wait_for(lambda: server.webhook_executions())
            call = server.webhook_executions()[-1]                   # .json, .query, .headers, .at

People act through the gateway: `user_message`, `mention`, `bot_message`, `webhook_message`,
`dm`, `thread_create`, `slash_command` (also autocomplete), `click`; `gateway.drop()`,
`gateway.request_reconnect()`, `gateway.redeliver(seq)` for resumes and duplicates. Failure
switches: `rate_limit`, `fail`, `slow`, `delete_webhook`, `deny_manage_webhooks`,
`archive_thread`, `delete_message`, `interaction_deadline`.

The state is in `tests.servers.discord_world`, what people do in `tests.servers.discord_people`,
the REST routes in `tests.servers.discord_rest`, the gateway in `tests.servers.discord_gateway`,
the wire objects in `tests.servers.discord_payloads`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yarl
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from tests.servers import discord_payloads as wire
from tests.servers.discord_gateway import Gateway
from tests.servers.discord_people import DiscordPeople
from tests.servers.discord_world import (  # noqa: F401  (re-exported for tests)
    ALREADY_ACKNOWLEDGED,
    MISSING_PERMISSIONS,
    THREAD_ARCHIVED,
    THREAD_EXISTS,
    DiscordError,
    DiscordWorld,
    invalid_form,
    unknown,
)

TOKEN = "test-bot-token"

_Handler = Callable[[web.Request, Any], Any]


@dataclass
class Request:
    """One REST request: `route` is the template ("POST /channels/{channel_id}/messages")."""

    method: str
    path: str  # without the /api/v10 prefix
    route: str
    query: dict[str, str]
    json: Any  # the JSON body; for multipart, the parsed payload_json
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    status: int = 0
    response: Any = None
    arrived: float | None = None  # when its first bytes reached the server (before any queueing here)

    def __getitem__(self, key: str) -> Any:
        return self.json[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.json.get(key, default) if isinstance(self.json, dict) else default


@dataclass
class Callback:
    """One interaction callback (POST /interactions/{id}/{token}/callback)."""

    interaction_id: int
    type: int
    data: dict[str, Any] | None
    at: float  # time.monotonic() when it was handled
    dispatched_at: float | None  # when INTERACTION_CREATE went out, for response-time figures
    arrived: float | None = None  # when its first bytes reached the server (`at` adds this server's queue)

    @property
    def latency(self) -> float | None:
        """Seconds from INTERACTION_CREATE to this callback (Discord allows 3)."""
        return None if self.dispatched_at is None else self.at - self.dispatched_at

    @property
    def received_latency(self) -> float | None:
        """Seconds from INTERACTION_CREATE to the callback's first bytes reaching this server: the
        bot's part alone, without the time this one-process stand-in takes to get to it in a burst."""
        return None if self.dispatched_at is None or self.arrived is None else self.arrived - self.dispatched_at


class _StampingHandler(RequestHandler):
    """aiohttp's connection handler, noting when a request's first bytes arrive. The bot's clients
    send one request at a time per connection (no pipelining), so the first bytes since the last
    request was taken are the next request's."""

    __slots__ = ("first_bytes_at",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_bytes_at: float | None = None

    def data_received(self, data: bytes) -> None:
        if self.first_bytes_at is None:
            self.first_bytes_at = time.monotonic()
        super().data_received(data)

    def take_arrival(self) -> float | None:
        at, self.first_bytes_at = self.first_bytes_at, None
        return at


class _StampingServer:
    """aiohttp's protocol factory (`web.Server`) making `_StampingHandler`s."""

    def __init__(self, server: web.Server) -> None:
        self._server = server

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def __call__(self) -> RequestHandler:
        server = self._server
        return _StampingHandler(server, loop=server._loop, **server._kwargs)


@dataclass
class _Switch:
    remaining: int | None  # None: for ever
    value: Any


class DiscordServer(DiscordPeople):
    """A local Discord. `token`: the one bot token accepted (REST 401 / gateway 4004 otherwise).
    `heartbeat_interval` in ms (HELLO). `allowed_intents`: the privileged intents the portal has
    switched on (IDENTIFY asking for another closes with 4014). `latency`: seconds added to
    every REST answer."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        heartbeat_interval: int = 45000,
        allowed_intents: int = wire.MESSAGE_CONTENT,
        latency: float = 0.0,
    ):
        self.token = token
        self.latency = latency
        #: Seconds an interaction may wait for its callback before Discord answers 404 10062.
        self.interaction_deadline = 3.0
        self.requests: list[Request] = []
        self.callbacks: list[Callback] = []
        self.errors: list[Exception] = []  # exceptions the stand-in itself raised while answering
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # guild id (None: global) -> commands
        self._answered: dict[str, int | None] = {}  # token -> response message id
        self._identities: dict[int, dict[str, Any]] = {}  # webhook message id -> username, avatar_url
        self._rate_limits: dict[str, _Switch] = {}
        self._failures: dict[str, _Switch] = {}
        self._slow: dict[str, _Switch] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        super().__init__()
        self.gateway = Gateway(self, heartbeat_interval=heartbeat_interval, allowed_intents=allowed_intents)

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What discord.py's `Route.BASE` must be."""
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> DiscordServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        for method, template, handler in self._routes():
            app.router.add_route(method, "/api/v10" + template, self._wrap(method, template, handler))
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        self._runner._server = _StampingServer(self._runner._server)  # type: ignore[assignment]
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- failure switches -------------------------------------------------------------------

    def rate_limit(self, route: str, times: int = 1, retry_after: float = 0.05, *, is_global: bool = False) -> None:
        """The next `times` requests matching `route` answer 429 with Retry-After and Discord's body.
        `route`: a template ("POST /channels/{channel_id}/messages") or a path ("POST /channels/1/messages")."""
        self._rate_limits[route] = _Switch(times, (retry_after, is_global))

    def fail(self, route: str, status: int, code: int, message: str, times: int | None = 1) -> None:
        """The next `times` requests matching `route` (None: all) answer `status` {"code", "message"}."""
        self._failures[route] = _Switch(times, DiscordError(status, code, message))

    def slow(self, route: str, seconds: float, times: int | None = None) -> None:
        """Requests matching `route` wait `seconds` before answering (the next `times`; None: all)."""
        self._slow[route] = _Switch(times, seconds)

    def _take(self, switches: dict[str, _Switch], method: str, template: str, path: str) -> Any:
        for key in (f"{method} {template}", f"{method} {path}"):
            switch = switches.get(key)
            if switch is None or switch.remaining == 0:
                continue
            if switch.remaining is not None:
                switch.remaining -= 1
            return switch.value
        return None

    # --- recorded requests ------------------------------------------------------------------

    def of(self, route: str, *, ok_only: bool = True) -> list[Request]:
        """Requests to a route template ("POST /webhooks/{webhook_id}/{webhook_token}") or an exact
        "METHOD /path", successful ones only unless `ok_only=False`."""
        return [r for r in self.requests if route in (f"{r.method} {r.route}", f"{r.method} {r.path}")
                and (r.status < 300 or not ok_only)]

    def webhook_executions(self, webhook_id: int | None = None) -> list[Request]:
        """Successful POST /webhooks/{id}/{token} of channel webhooks (not interaction follow-ups)."""
        return [r for r in self.of("POST /webhooks/{webhook_id}/{webhook_token}")
                if r.path.split("/")[2] != str(self.application_id)
                and (webhook_id is None or r.path.split("/")[2] == str(webhook_id))]

    def channel_posts(self, channel_id: int | None = None) -> list[Request]:
        """Successful POST /channels/{id}/messages (posts as the bot)."""
        return [r for r in self.of("POST /channels/{channel_id}/messages")
                if channel_id is None or r.path.split("/")[2] == str(channel_id)]

    def posts_for(self, message: dict[str, Any]) -> list[Request]:
        """Successful posts (webhook executions with wait=true, bot posts, interaction follow-ups)
        that answered `message` (a payload a helper returned): in its channel or in the thread
        created from it (same id), arriving after it was dispatched. For "dispatch to answer" figures:
        `server.posts_for(m)[0].at - server.dispatched_at[int(m["id"])]`."""
        places = {message["channel_id"], message["id"]}
        since = self._dispatched_at.get(int(message["id"]), 0.0)
        return [r for r in self.requests if r.status == 200 and r.method == "POST" and r.at >= since
                and r.route in ("/webhooks/{webhook_id}/{webhook_token}", "/channels/{channel_id}/messages")
                and isinstance(r.response, dict) and r.response.get("channel_id") in places]

    def callback_types(self) -> list[int]:
        return [c.type for c in self.callbacks]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked on every request and gateway event)."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; requests so far: {[f'{r.method} {r.path}' for r in self.requests]}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    def touch(self) -> None:
        self._changed.set()

    # --- REST plumbing ----------------------------------------------------------------------

    def _wrap(self, method: str, template: str, handler: _Handler) -> Callable[[web.Request], Any]:
        async def serve(request: web.Request) -> web.Response:
            path = request.path.removeprefix("/api/v10")
            body = await _read_body(request)
            take = getattr(request.protocol, "take_arrival", None)  # after the body: its bytes are this request's
            request["arrived"] = arrived = take() if take is not None else None
            record = Request(method, path, template, dict(request.query), body, dict(request.headers), arrived=arrived)
            self.requests.append(record)
            try:
                delay = self._take(self._slow, method, template, path)
                if delay or self.latency:
                    await asyncio.sleep((delay or 0) + self.latency)
                limited = self._take(self._rate_limits, method, template, path)
                if limited is not None:
                    return self._too_many(record, *limited)
                auth = request.headers.get("Authorization")
                if auth is not None and auth != f"Bot {self.token}":
                    raise DiscordError(401, 0, "401: Unauthorized")
                if auth is None and not template.startswith(("/webhooks/", "/interactions/")):
                    raise DiscordError(401, 0, "401: Unauthorized")
                failure = self._take(self._failures, method, template, path)
                if failure is not None:
                    raise failure
                result = handler(request, body)
                if asyncio.iscoroutine(result):
                    result = await result
            except DiscordError as e:
                record.status, record.response = e.status, e.body()
                self.touch()
                return _json(record.response, status=e.status)
            except Exception as e:  # noqa: BLE001  (a bug in the stand-in: 503, which discord.py does not retry)
                self.errors.append(e)
                record.status, record.response = 503, {"message": f"stand-in error: {e!r}", "code": 0}
                self.touch()
                return _json(record.response, status=503)
            record.status, record.response = (204, None) if result is None else (200, result)
            self.touch()
            if result is None:
                return web.Response(status=204)
            return _json(result)

        return serve

    def _too_many(self, record: Request, retry_after: float, is_global: bool) -> web.Response:
        record.status = 429
        record.response = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        self.touch()
        headers = {
            "Retry-After": str(max(1, round(retry_after))),
            "Via": "1.1 google",  # discord.py treats a 429 without Via as a Cloudflare ban
            "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": str(retry_after), "X-RateLimit-Bucket": f"bucket-{zlib.crc32(record.route.encode()):08x}",
            "X-RateLimit-Scope": "global" if is_global else "user",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        return _json(record.response, status=429, headers=headers)

    def _routes(self) -> list[tuple[str, str, _Handler]]:
        from tests.servers import discord_rest as rest

        return rest.routes(self)

    def callbacks_for(self, interaction: dict[str, Any]) -> list[Callback]:
        return [c for c in self.callbacks if c.interaction_id == int(interaction["id"])]

    @property
    def dispatched_at(self) -> dict[int, float]:
        """Message id (helpers' MESSAGE_CREATE) or interaction id -> time.monotonic() just before
        its event was dispatched: the start of a "dispatch to answer" figure."""
        return self._dispatched_at

    def posted_as(self, message_id: int) -> dict[str, Any] | None:
        """The identity a webhook post was sent with ({"username", "avatar_url"}), None for others."""
        return self._identities.get(int(message_id))


def _json(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer with Content-Type exactly `application/json`, as Discord sends it (discord.py
    parses a body as JSON only then)."""
    return web.Response(body=json.dumps(body).encode(), status=status, headers=headers, content_type="application/json")


async def _read_body(request: web.Request) -> Any:
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        raw = form.get("payload_json")
        return json.loads(raw) if isinstance(raw, str) else None
    raw = await request.text()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@contextlib.contextmanager
def pointed_at(server: DiscordServer) -> Iterator[DiscordServer]:
    """Point discord.py's REST base and default gateway at `server`, restoring them after."""
    import discord.gateway
    import discord.http

    old_base, old_gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = server.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(server.gateway_url)
    try:
        yield server
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


@contextlib.asynccontextmanager
async def connected(client: Any, server: DiscordServer, *, timeout: float = 5.0,
                    start: Callable[[], Any] | None = None) -> AsyncIterator[Any]:
    """Run `client` (a discord.Client) against `server` until the block ends, then close it.
    `start`: what runs it (default `client.start(server.token)`; an adapter passes its own
    `run`). Waits until the guild is in the client's cache (GUILD_CREATE handled), which does not
    wait out discord.py's `guild_ready_timeout` (2 s after the last GUILD_CREATE before
    on_ready); a client's own failure to start (LoginFailure, PrivilegedIntentsRequired...) is
    raised."""
    task = asyncio.ensure_future(start() if start else client.start(server.token))
    try:
        deadline = time.monotonic() + timeout
        while client.get_guild(server.guild_id) is None:
            if task.done():
                task.result()
                raise AssertionError("the client stopped before it connected")
            if time.monotonic() > deadline:
                raise AssertionError("the client did not connect to the local Discord")
            await asyncio.sleep(0.01)
        yield client
    finally:
        await client.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout)


@contextlib.asynccontextmanager
async def local_discord(**kw: Any) -> AsyncIterator[DiscordServer]:
    """A started DiscordServer with discord.py pointed at it (for fixtures and benchmarks)."""
    async with DiscordServer(**kw) as server:
        with pointed_at(server):
            yield server
