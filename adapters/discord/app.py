"""The Discord adapter: discord.py's client, pointed where the settings say, and how it runs.

`DiscordAdapter(settings, engine)` builds an `OrchestraClient` (a `discord.Client` with an
app-command tree), the outbox and the listeners. `verify()` logs in before anything else starts
(a refused token stops start-up with its name); `run()` holds the gateway connection, which
discord.py resumes by itself after a drop (a fresh session, which Discord sends nothing it missed,
reads the history instead: `catch_up.py`); `stop_receiving()` ends the connection but keeps the
REST session, so turns still running during shutdown can post; `stop()` closes everything.

Where calls go: `DISCORD_API_URL` becomes `discord.http.Route.BASE` (every REST call, webhooks
included, is built on it) and `DISCORD_GATEWAY_URL` becomes `DiscordWebSocket.DEFAULT_GATEWAY`.
Both are class attributes, so one process talks to one Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket

from adapters.discord.buckets import sweep_rarely
from adapters.discord.catch_up import CatchUp
from adapters.discord.listeners import DiscordListeners
from adapters.discord.outbox import DiscordOutbox

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"
#: Login plus command sync; discord.py itself waits out 429s and retries 5xx inside this.
LOGIN_TIMEOUT = 60.0

#: What the bot needs in a channel for the full experience (docs/discord.md explains each one).
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    read_message_history=True,
    embed_links=True,
    manage_webhooks=True,  # persona names and avatars; without it: the bot's name, the persona in bold
    manage_threads=True,  # unarchive a thread an investigation still uses
)
INVITE_SCOPES = ("bot", "applications.commands")

MESSAGE_CONTENT_HELP = (
    "Discord refused the Message Content intent: enable \"Message Content Intent\" in the developer portal "
    "(https://discord.com/developers/applications → your application → Bot → Privileged Gateway Intents), "
    "or set DISCORD_MESSAGE_CONTENT=false to answer mentions, slash commands, buttons and DMs only"
)

#: Gateway close codes that mean "this configuration will never connect" (Discord's documented codes).
REFUSING_CLOSE_CODES = {
    4004: "Discord refused DISCORD_TOKEN when connecting to the gateway: reset the token (developer portal → "
          "your application → Bot → Reset Token) and set DISCORD_TOKEN to it",
    4013: "Discord refused the gateway intents Orchestra asked for; check DISCORD_MESSAGE_CONTENT",
    4014: MESSAGE_CONTENT_HELP,
}


def api_base_url(url: str | None) -> str:
    """`Route.BASE` for `DISCORD_API_URL`. discord.py appends paths like `/users/@me` to it, so:
    a URL with an `api` segment in its path is used as given (e.g. `https://host/api/v10`);
    one without (`http://127.0.0.1:8123`, `https://proxy.example/discord`) gets `/api/v10`."""
    url = (url or DEFAULT_API_URL).strip().rstrip("/")
    if "api" in urlsplit(url).path.split("/"):
        return url
    return url + "/api/v10"


def gateway_url(url: str | None) -> yarl.URL:
    """`DiscordWebSocket.DEFAULT_GATEWAY` for `DISCORD_GATEWAY_URL` (discord.py adds the query)."""
    return yarl.URL((url or DEFAULT_GATEWAY_URL).strip())


def point_at(settings: "Settings") -> None:
    """Send every REST call and the gateway where the settings say. Unset leaves discord.py's
    own value (Discord's, unless a test or an embedding program pointed it elsewhere)."""
    if settings.discord_api_url:
        discord.http.Route.BASE = api_base_url(settings.discord_api_url)
    if settings.discord_gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = gateway_url(settings.discord_gateway_url)


def intents_for(settings: "Settings") -> discord.Intents:
    """Only what the bot reads: servers and their channels, messages in servers and DMs, and
    (privileged, on by default) their text, without which only mentions and DMs carry text."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = settings.discord_message_content
    return intents


def invite_url(application_id: int | str) -> str:
    """The URL a server admin opens to add the bot with the scopes and permissions it needs."""
    query = urlencode({"client_id": application_id, "scope": " ".join(INVITE_SCOPES),
                       "permissions": INVITE_PERMISSIONS.value})
    return f"https://discord.com/oauth2/authorize?{query}"


class DiscordStartError(RuntimeError):
    """Discord refused the configuration (`refused`: fix a setting and restart, exit code 2), or
    could not be reached (`refused` false: may pass). The message is safe to print."""

    def __init__(self, message: str, *, refused: bool):
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class DiscordIdentity:
    """Who we are on Discord, from the login."""

    bot_name: str
    bot_id: int
    application_id: int

    def connected(self, servers: int, *, message_content: bool = True) -> str:
        line = f"Discord: connected as @{self.bot_name} ({servers} server{'' if servers == 1 else 's'})"
        if not message_content:
            line += "; DISCORD_MESSAGE_CONTENT=false: mentions, commands, buttons and DMs only"
        if servers == 0:
            line += f"\n  No server has added the bot yet; invite it: {invite_url(self.application_id)}"
        return line


class OrchestraClient(discord.Client):
    """A `discord.Client` with an app-command tree; events go to the listeners."""

    def __init__(self, settings: "Settings", **options: Any):
        # Orchestra has no voice: discord.py's warnings about missing voice libraries would only
        # be noise on every start
        discord.VoiceClient.warn_nacl = False
        if hasattr(discord.VoiceClient, "warn_dave"):
            discord.VoiceClient.warn_dave = False
        super().__init__(
            intents=intents_for(settings),
            # a second line of defence: a send that forgets its own allowed mentions notifies nobody
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        sweep_rarely(self.http)  # a burst makes a bucket per channel; discord.py would scan them all each time
        self.settings = settings
        self.tree = app_commands.CommandTree(self)
        self.listeners: DiscordListeners | None = None  # set by DiscordAdapter before login
        self.catch_up: CatchUp | None = None  # likewise: what a fresh session missed (on_ready)
        self._connected_once = False
        #: Set when the gateway connection fails before it was ever ready.
        self.first_connection_failed = asyncio.Event()

    async def setup_hook(self) -> None:
        """Runs inside `login`: the commands and buttons exist before the first event arrives."""
        if self.listeners is not None:
            self.listeners.install(self, self.tree)
        await self.sync_commands()

    async def sync_commands(self) -> None:
        """To each of DISCORD_GUILD_IDS at once (a guild's commands appear immediately), or
        globally (Discord may take a while to show them everywhere)."""
        try:
            await self._sync_commands()
        except discord.HTTPException as e:
            if isinstance(e, discord.Forbidden) or e.status in (401, 429) or e.status >= 500:
                raise
            # Discord refused the commands themselves: ours to fix, not the person's; details in the log
            log.error("Discord: command sync refused (HTTP %s, code %s): %s", e.status, e.code, e.text)
            raise DiscordStartError(
                f"Discord refused Orchestra's slash commands (HTTP {e.status}); the log has the details", refused=False
            ) from None

    async def _sync_commands(self) -> None:
        guild_ids = self.settings.discord_guild_ids
        for guild_id in guild_ids:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            try:
                commands = await self.tree.sync(guild=guild)
            except discord.Forbidden:
                raise DiscordStartError(
                    f"DISCORD_GUILD_IDS: cannot add commands to server {guild_id}: the bot is not in it, or was "
                    "invited without the applications.commands scope; invite it with the URL in docs/discord.md, "
                    "or remove the id",
                    refused=True,
                ) from None
            log.info("Discord: %d command(s) synced to server %s", len(commands), guild_id)
        if not guild_ids:
            commands = await self.tree.sync()
            log.info("Discord: %d command(s) synced globally (set DISCORD_GUILD_IDS for instant sync)", len(commands))

    async def on_message(self, message: discord.Message) -> None:
        if self.listeners is not None:
            await self.listeners.on_message(message)

    # a lost connection leaves a trace; discord.py reconnects and resumes by itself
    async def on_disconnect(self) -> None:
        if not self._connected_once:
            self.first_connection_failed.set()  # `DiscordAdapter.run` stops with what to check
            return
        log.info("Discord: gateway connection lost; discord.py reconnects and resumes")

    async def on_connect(self) -> None:
        # READY arrived: the connection works. Not `on_ready`, which discord.py holds back until
        # the guilds have streamed in (guild_ready_timeout): a drop in between is an ordinary
        # drop to resume, not a gateway that cannot be reached
        self._connected_once = True

    async def on_resumed(self) -> None:
        log.info("Discord: gateway session resumed")

    async def on_ready(self) -> None:
        # a fresh session (start-up, or one Discord invalidated): nothing posted meanwhile will
        # be sent to it, so the history is read (catch_up.py); a resumed one had it replayed
        self._connected_once = True
        log.info("Discord: gateway ready (%d server(s))", len(self.guilds))
        if self.catch_up is not None:
            self.catch_up.start()


class ShardedOrchestraClient(OrchestraClient, discord.AutoShardedClient):
    """The same client over some of Discord's shards (DISCORD_SHARD_IDS of DISCORD_SHARD_COUNT):
    replicas that split the gateway each receive their servers' events only."""


def client_for(settings: "Settings", **options: Any) -> OrchestraClient:
    """Sharded when DISCORD_SHARD_IDS and DISCORD_SHARD_COUNT say so (settings checks both or neither)."""
    if settings.discord_shard_count is not None:
        return ShardedOrchestraClient(settings, shard_ids=list(settings.discord_shard_ids),
                                      shard_count=settings.discord_shard_count, **options)
    return OrchestraClient(settings, **options)


class DiscordAdapter:
    """Build with settings and the engine; register `outbox`; `verify()`, then `run()`."""

    platform = "discord"

    def __init__(self, settings: "Settings", engine: Any, *, persona_admin: Any = None, **client_options: Any):
        """`persona_admin`: the service behind `/persona` (`PersonaAdminPort`); without it the
        command answers that persona admin is not available."""
        if settings.discord_token is None:
            raise ValueError("the Discord adapter needs DISCORD_TOKEN")
        self.settings = settings
        self.engine = engine
        point_at(settings)
        self.client = client_for(settings, **client_options)
        self.outbox = DiscordOutbox(self.client)
        self.listeners = DiscordListeners(engine, settings, self.outbox, persona_admin=persona_admin)
        self.client.listeners = self.listeners
        self.catch_up = self.client.catch_up = CatchUp(self.client, self.listeners, engine, settings.discord_catch_up)
        self.identity: DiscordIdentity | None = None
        self._receiving: asyncio.Task | None = None

    @property
    def api_url(self) -> str:
        return discord.http.Route.BASE

    async def verify(self) -> DiscordIdentity:
        """Log in (REST: who we are, which application) and sync the commands, before the
        banner and before any work resumes: a refused token fails here, once, with its name."""
        token = self.settings.discord_token.get_secret_value()  # type: ignore[union-attr]
        try:
            await asyncio.wait_for(self.client.login(token), LOGIN_TIMEOUT)
        except discord.LoginFailure:
            raise DiscordStartError(
                "Discord refused DISCORD_TOKEN (401): copy the bot token again from the developer portal "
                "(your application → Bot → Reset Token)",
                refused=True,
            ) from None
        except DiscordStartError:
            raise
        except discord.HTTPException as e:
            log.debug("Discord: login answered %s", e.status, exc_info=True)
            raise DiscordStartError(
                f"Discord answered the login with HTTP {e.status}; try again later", refused=False
            ) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            log.debug("Discord: cannot reach %s", self.api_url, exc_info=True)
            raise DiscordStartError(
                f"cannot reach Discord at {self.api_url} "
                f"({'no answer in time' if isinstance(e, asyncio.TimeoutError) else 'no connection'}): check the network"
                + (" and DISCORD_API_URL" if self.settings.discord_api_url else ""),
                refused=False,
            ) from None
        user = self.client.user
        assert user is not None  # set by login
        self.identity = DiscordIdentity(
            bot_name=user.name, bot_id=user.id, application_id=self.client.application_id or user.id
        )
        return self.identity

    async def run(self) -> None:
        """Hold the gateway connection until `stop_receiving()` / `stop()` (returns) or until
        Discord ends it for good (raises `DiscordStartError`). Drops after the first connection
        are discord.py's to resume; a first connection that fails stops here (discord.py would
        retry it forever, e.g. with a mistyped DISCORD_GATEWAY_URL)."""
        if self.identity is None:
            await self.verify()
        receiving = self._receiving = asyncio.ensure_future(self.client.connect(reconnect=True))
        never_connected = asyncio.ensure_future(self.client.first_connection_failed.wait())
        try:
            await asyncio.wait({receiving, never_connected}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                await asyncio.gather(receiving, return_exceptions=True)
                raise DiscordStartError(self._unreachable_gateway(), refused=False)
            receiving.result()
        except asyncio.CancelledError:
            if receiving.cancelled() and asyncio.current_task().cancelling() == 0:  # type: ignore[union-attr]
                return  # stop_receiving() ended it
            receiving.cancel()
            raise
        except discord.PrivilegedIntentsRequired:
            raise DiscordStartError(MESSAGE_CONTENT_HELP, refused=True) from None
        except discord.ConnectionClosed as e:
            if e.code in REFUSING_CLOSE_CODES:
                raise DiscordStartError(REFUSING_CLOSE_CODES[e.code], refused=True) from None
            log.warning("Discord: the gateway closed the connection for good (code %s)", e.code)
            raise DiscordStartError(
                f"Discord closed the gateway connection (code {e.code}) and it cannot be resumed; restart Orchestra",
                refused=False,
            ) from None
        except (discord.GatewayNotFound, aiohttp.ClientError, OSError, asyncio.TimeoutError):
            log.warning("Discord: cannot connect to the gateway", exc_info=True)
            raise DiscordStartError(self._unreachable_gateway(), refused=False) from None
        finally:
            never_connected.cancel()

    def _unreachable_gateway(self) -> str:
        return (f"cannot connect to Discord's gateway at {DiscordWebSocket.DEFAULT_GATEWAY}: check the network"
                + (" and DISCORD_GATEWAY_URL" if self.settings.discord_gateway_url else ""))

    async def stop_receiving(self) -> None:
        """No more events (nor catching up); the REST session stays open, so work finishing now
        can still post."""
        await self.catch_up.stop()
        if self._receiving is not None and not self._receiving.done():
            self._receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._receiving
        ws = self.client.ws
        if ws is not None and ws.open:
            with contextlib.suppress(Exception):
                await ws.close(code=1000)
        idle = getattr(self.listeners, "idle", None)
        if idle is not None:
            await idle()

    async def stop(self) -> None:
        """Stop receiving and close the client (gateway and REST session)."""
        await self.stop_receiving()
        if not self.client.is_closed():
            await self.client.close()
