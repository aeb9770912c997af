"""The Slack adapter: a Bolt `AsyncApp`, its listeners, the outbox, and the two ways to run.

Socket Mode (`SLACK_APP_TOKEN`, no public URL) or HTTP mode (`SLACK_SIGNING_SECRET`, Bolt
verifies every request's signature and age) serving `POST /slack/events` (`adapters.slack.http`, on
uvicorn in this loop, alone or on the operator API's app) and `GET /health`.
Every Web API call goes to `SLACK_API_URL` when it is set, and a 429 is waited out with its
`Retry-After` by slack_sdk's own retry handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.authorization.async_single_team_authorization import AsyncSingleTeamAuthorization
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.listening import EnginePort
from adapters.slack.listeners import SlackListeners
from adapters.slack.outbox import SlackOutbox
from adapters.slack.pacing import ChannelPacer
from adapters.slack.shortcut import EventShortcut

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
#: How many times a 429 is waited out before the post is reported as failed.
RATE_LIMIT_RETRIES = 6


def api_base_url(url: str | None) -> str:
    """slack_sdk joins method names onto the base URL: it must end with a slash."""
    url = (url or DEFAULT_API_URL).strip()
    return url if url.endswith("/") else url + "/"


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


# --- start-up: who we are, and what Slack says when it will not have us -------------------------

#: Slack's answers that mean "this token will never work": retrying them only repeats the refusal.
TOKEN_REFUSALS: dict[str, str] = {
    "invalid_auth": "the token is not valid; copy it again",
    "not_authed": "no token reached Slack; copy it again",
    "token_revoked": "the token was revoked; reinstall the app to the workspace and copy the new one",
    "token_expired": "the token has expired; reinstall the app and copy the new one",
    "account_inactive": "the app's bot user or the workspace was deactivated; reinstall the app",
    "not_allowed_token_type": "this is the wrong kind of token",
    "missing_scope": "the token lacks a scope the app needs; reinstall the app from manifest.yml",
}

WHERE = {
    "SLACK_BOT_TOKEN": "the Bot User OAuth Token (xoxb-…, under OAuth & Permissions)",
    "SLACK_APP_TOKEN": "an app-level token (xapp-…, with connections:write, under Basic Information → App-Level Tokens)",
}


class SlackStartError(RuntimeError):
    """Slack refused a credential at start-up (`refused`: a configuration mistake, fix and restart),
    or could not be reached or listened for (`refused` false). The message is safe to print."""

    def __init__(self, message: str, *, setting: str, refused: bool):
        super().__init__(message)
        self.setting = setting
        self.refused = refused


@dataclass(frozen=True)
class SlackIdentity:
    """The answer to `auth.test`: which workspace, and which bot user we are in it."""

    team: str
    team_id: str
    bot_name: str
    bot_user_id: str
    bot_id: str | None = None

    def connected(self, mode: str) -> str:
        return f"Slack: connected to {self.team} (workspace {self.team_id}) as @{self.bot_name} ({mode})"


def _refusal(setting: str, method: str, error: SlackApiError) -> SlackStartError:
    code = str(error.response.get("error", "") or "unknown_error")
    if code not in TOKEN_REFUSALS:
        return SlackStartError(
            f"Slack answered {method} with {code!r} for {setting}; try again later", setting=setting, refused=False
        )
    what = TOKEN_REFUSALS[code]
    if code == "missing_scope" and setting == "SLACK_APP_TOKEN":
        what = "the app-level token lacks the connections:write scope; generate one that has it"
    elif code in ("invalid_auth", "not_authed", "not_allowed_token_type"):
        what += f": {setting} takes {WHERE[setting]}"
    return SlackStartError(f"Slack refused {setting} ({method}: {code}): {what}", setting=setting, refused=True)


def acks_first(handler_class: type, engine: Any, shortcut: Any = None) -> type:
    """Bolt's Socket Mode handler, telling the engine while it owes an envelope's ack (from the
    envelope reaching Bolt until the ack is sent): work the engine would start, or posts it
    would send, wait for the acks owed before them (`engine.intake`), so under a burst acks do
    not queue behind other events' work. With a `shortcut` (`adapters.slack.shortcut`), the
    envelopes it takes (mentions and messages) are stored and acked without Bolt's dispatch."""
    intake = getattr(engine, "intake", None)
    if intake is None and shortcut is None:
        return handler_class

    class AcksFirst(handler_class):  # type: ignore[misc, valid-type]
        async def handle(self, client: Any, req: Any) -> None:
            async with intake.taking() if intake is not None else _nothing():
                if shortcut is not None and await shortcut.take(client, req):
                    return
                await super().handle(client, req)

    return AcksFirst


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def _seed_bolt_authorization(app: AsyncApp, auth: Any) -> None:
    """Hand Bolt the `auth.test` answer `verify` already has. Bolt's single-workspace
    authorization asks for it itself on the first request, and every request that arrives
    before that answer asks again: a cold burst of 200 envelopes made 112 `auth.test` calls,
    each in some envelope's way to its ack. (Bolt keeps it in a middleware attribute; if a
    later Bolt moves it, this does nothing and Bolt asks as before.)"""
    for middleware in getattr(app, "_async_middleware_list", ()):
        if isinstance(middleware, AsyncSingleTeamAuthorization) and getattr(middleware, "auth_test_result", 1) is None:
            middleware.auth_test_result = auth


class SlackAdapter:
    """Build with settings and the engine; register `outbox`; then start one of the two modes.

    `start_socket_mode()` and `start_http()` return once connected / listening; keep the event
    loop running (e.g. `await asyncio.Event().wait()`) and call `stop()` on the way out.
    """

    platform = "slack"

    def __init__(
        self,
        settings: "Settings",
        engine: EnginePort,
        *,
        pacer: ChannelPacer | None = None,
        logger: logging.Logger | None = None,
        persona_admin: Any = None,
    ):
        if settings.slack_bot_token is None:
            raise ValueError("the Slack adapter needs SLACK_BOT_TOKEN")
        self.settings = settings
        self.engine = engine
        # Bolt builds the Web API client from the token we hand it; handing it a client instead
        # makes it read SLACK_BOT_TOKEN from the environment on its own and warn that the token
        # "will be unused". So the token goes in, and the client Bolt made is pointed at our URL.
        self.app = AsyncApp(
            name="orchestra",
            token=_secret(settings.slack_bot_token),
            signing_secret=_secret(settings.slack_signing_secret),
            # a logger of our choosing: Bolt's own would freeze the level the root had just now,
            # while this one follows `slack_bolt`'s level (and carries the Web API client's logs)
            logger=logger or logging.getLogger("slack_bolt.AsyncApp"),
            # Acknowledge only when the listener returns, i.e. once the task is in SQLite (a few
            # ms): a kill right after the 200 / Socket Mode ack loses nothing. Slower work (posts,
            # respond()) runs after the ack (`SlackListeners.later`). Socket Mode honours this
            # too: its handler sends the ack after `async_dispatch` returns, and only for a 200.
            process_before_response=True,
            # an unhandled request reaches `SlackListeners.on_error` (one log line), not Bolt's
            # multi-line suggestion of code to write
            raise_error_for_unhandled_request=True,
        )
        self.client: AsyncWebClient = self.app.client
        self.client.base_url = api_base_url(settings.slack_api_url)
        self.client.retry_handlers = [
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ]
        self.outbox = SlackOutbox(self.client, pacer)
        self.listeners = SlackListeners(engine, settings, self.outbox, persona_admin=persona_admin)
        self.outbox.on_unreachable = self.listeners.tell_unreachable
        self.listeners.register(self.app)
        self.socket_handler: "AsyncSocketModeHandler | None" = None
        self._server: Any = None  # adapters.api.server.HttpServer, in HTTP mode
        self._session: aiohttp.ClientSession | None = None
        self.identity: SlackIdentity | None = None
        self._socket_url: str | None = None  # issued by `verify`, used by the next connect

    # --- shared HTTP session --------------------------------------------------------------------

    def _open_session(self) -> None:
        """One pooled session for every Web API call (created inside the running loop), with as
        many kept-alive connections as answers can be in flight (ORCHESTRA_MAX_MODEL_CALLS): a
        burst's posts neither queue for aiohttp's default 100 nor reconnect after 15 s idle."""
        if self._session is None or self._session.closed:
            size = max(100, int(getattr(self.settings, "max_model_calls", 100) or 100))
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30),
                connector=aiohttp.TCPConnector(limit=size, keepalive_timeout=60.0),
            )
            self.client.session = self._session

    # --- start-up checks ------------------------------------------------------------------------

    async def verify(self, *, socket_mode: bool) -> SlackIdentity:
        """Ask Slack who we are (`auth.test` with the bot token) and, for Socket Mode, for a
        connection URL (`apps.connections.open` with the app token), before anything connects:
        a wrong or revoked token fails here, once, with its name (`SlackStartError`), instead of
        at the first event or in Socket Mode's endless reconnect loop."""
        self._open_session()
        try:
            auth = await self.client.auth_test()
            if socket_mode:
                self._socket_url = await self._issue_socket_url()
        except SlackApiError as e:
            raise _refusal("SLACK_BOT_TOKEN", "auth.test", e) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            log.debug("Slack: cannot reach %s", self.client.base_url, exc_info=True)
            raise SlackStartError(
                f"cannot reach Slack at {self.client.base_url} "
                f"({'no answer in time' if isinstance(e, asyncio.TimeoutError) else 'no connection'}): check the network"
                + (" and SLACK_API_URL" if self.settings.slack_api_url else ""),
                setting="SLACK_API_URL", refused=False,
            ) from None
        self.outbox.workspace_url = str(auth.get("url") or "") or None  # digests link threads
        self.identity = SlackIdentity(
            team=str(auth.get("team") or auth.get("team_id") or "?"),
            team_id=str(auth.get("team_id") or "?"),
            bot_name=str(auth.get("user") or "?"),
            bot_user_id=str(auth.get("user_id") or "?"),
            bot_id=str(auth.get("bot_id") or "") or None,
        )
        _seed_bolt_authorization(self.app, auth)
        return self.identity

    async def _issue_socket_url(self) -> str:
        """What the Socket Mode client would ask for itself, asked here so that a refusal stops
        start-up (the client logs it and retries every few seconds, forever)."""
        app_token = _secret(self.settings.slack_app_token)
        if not app_token:
            raise SlackStartError("Socket Mode needs SLACK_APP_TOKEN", setting="SLACK_APP_TOKEN", refused=True)
        try:
            response = await self.client.apps_connections_open(app_token=app_token)
        except SlackApiError as e:
            raise _refusal("SLACK_APP_TOKEN", "apps.connections.open", e) from None
        return str(response["url"])

    def event_shortcut(self) -> EventShortcut | None:
        """Mentions and messages stored and answered without Bolt's dispatch (both modes); None
        until `verify` has said which bot user we are."""
        if self.identity is None:
            return None
        return EventShortcut(self.listeners, self.identity.bot_user_id, self.identity.bot_id)

    # --- Socket Mode ----------------------------------------------------------------------------

    async def start_socket_mode(self) -> SlackIdentity:
        """Connect (after `verify`, which runs here if it has not yet); returns who we are."""
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        app_token = _secret(self.settings.slack_app_token)
        if not app_token:
            raise ValueError("Socket Mode needs SLACK_APP_TOKEN (an app-level xapp- token with connections:write)")
        identity = self.identity if self.identity and self._socket_url else await self.verify(socket_mode=True)
        self.socket_handler = acks_first(AsyncSocketModeHandler, self.engine, self.event_shortcut())(
            self.app, app_token, web_client=self.client
        )
        # the URL `verify` was issued: the client uses it instead of asking again
        self.socket_handler.client.wss_uri, self._socket_url = self._socket_url, None
        await self.socket_handler.connect_async()
        log.info("Slack: connected in Socket Mode")
        return identity

    # --- HTTP mode ------------------------------------------------------------------------------

    def web_app(self) -> Any:
        """`POST /slack/events` for events, commands and buttons; `GET /health` for probes (an
        ASGI app; `orchestra --slack-http` and `orchestra serve` put the same route on the API's)."""
        from adapters.slack.http import slack_only_app

        return slack_only_app(self)

    async def start_http(self, port: int = 3000, host: str = "0.0.0.0", *, asgi: Any = None) -> int:
        """Serve `asgi` (default: `web_app()`) until `stop()`, with uvicorn in this event loop;
        returns the bound port (pass 0 to pick a free one)."""
        from adapters.api.server import HttpServer, ListenError

        if not _secret(self.settings.slack_signing_secret):
            raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET: requests are refused unless signed")
        if self.identity is None:
            await self.verify(socket_mode=False)
        self._open_session()
        server = HttpServer(asgi if asgi is not None else self.web_app(), host=host, port=port)
        try:
            bound = await server.start()
        except ListenError as e:
            raise SlackStartError(str(e), setting="--port", refused=True) from None
        self._server = server
        log.info("Slack: listening for HTTP requests on %s:%s/slack/events", host, bound)
        return bound

    def served_elsewhere(self) -> None:
        """HTTP mode on a server someone else runs (the API's): only the session is opened here."""
        self._open_session()

    # --- shutdown -------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop receiving, let posts in flight finish, close connections. Posts the engine makes
        afterwards (turns finishing during shutdown) still go out, on their own connections."""
        if self.socket_handler is not None:
            await self.socket_handler.close_async()
            self.socket_handler = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await self.listeners.idle()  # what was started after an ack (posts, respond())
        if self._session is not None:
            # Posts still under way (the engine finishes its running turns after this) finish
            # on the pooled session; later ones open their own. Then the pool closes.
            session, self._session = self._session, None
            self.client.session = None
            if not await self.outbox.drain(timeout=10.0):
                log.warning("Slack: closing with Web API calls still in flight")
            await session.close()
