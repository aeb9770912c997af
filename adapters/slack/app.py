"""The Slack adapter: a Bolt `AsyncApp`, its listeners, the outbox, and the two ways to run.

Socket Mode (`SLACK_APP_TOKEN`, no public URL) or HTTP mode (`SLACK_SIGNING_SECRET`, Bolt
verifies every request's signature and age) serving `POST /slack/events` and `GET /health`.
Every Web API call goes to `SLACK_API_URL` when it is set, and a 429 is waited out with its
`Retry-After` by slack_sdk's own retry handler.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.listeners import EnginePort, SlackListeners
from adapters.slack.translate import envelope_problem
from adapters.slack.outbox import SlackOutbox
from adapters.slack.pacing import ChannelPacer

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
    ):
        if settings.slack_bot_token is None:
            raise ValueError("the Slack adapter needs SLACK_BOT_TOKEN")
        self.settings = settings
        self.engine = engine
        self.client = AsyncWebClient(
            token=_secret(settings.slack_bot_token),
            base_url=api_base_url(settings.slack_api_url),
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
            ],
        )
        self.app = AsyncApp(
            name="orchestra",
            client=self.client,
            signing_secret=_secret(settings.slack_signing_secret),
            logger=logger,
            # Acknowledge only when the listener returns, i.e. once the task is in SQLite (a few
            # ms): a kill right after the 200 / Socket Mode ack loses nothing. Slower work (posts,
            # respond()) runs after the ack (`SlackListeners.later`). Socket Mode honours this
            # too: its handler sends the ack after `async_dispatch` returns, and only for a 200.
            process_before_response=True,
            # an unhandled request reaches `SlackListeners.on_error` (one log line), not Bolt's
            # multi-line suggestion of code to write
            raise_error_for_unhandled_request=True,
        )
        self.outbox = SlackOutbox(self.client, pacer)
        self.listeners = SlackListeners(engine, settings, self.outbox)
        self.outbox.on_unreachable = self.listeners.tell_unreachable
        self.listeners.register(self.app)
        self.socket_handler: "AsyncSocketModeHandler | None" = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- shared HTTP session --------------------------------------------------------------------

    def _open_session(self) -> None:
        """One pooled session for every Web API call (created inside the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
            self.client.session = self._session

    # --- Socket Mode ----------------------------------------------------------------------------

    async def start_socket_mode(self) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        app_token = _secret(self.settings.slack_app_token)
        if not app_token:
            raise ValueError("Socket Mode needs SLACK_APP_TOKEN (an app-level xapp- token with connections:write)")
        self._open_session()
        self.socket_handler = AsyncSocketModeHandler(self.app, app_token, web_client=self.client)
        await self.socket_handler.connect_async()
        log.info("Slack: connected in Socket Mode")

    # --- HTTP mode ------------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        """`POST /slack/events` for events, commands and buttons; `GET /health` for probes."""
        app = web.Application()

        verifier = SignatureVerifier(_secret(self.settings.slack_signing_secret))

        async def events(request: web.Request) -> web.Response:
            """Signature first, then the body: whatever arrives gets a 4xx and one log line, never
            a 500 or a traceback. Bolt checks the signature again, and answers the rest."""
            raw = await request.read()
            try:
                valid = verifier.is_valid(
                    body=raw,
                    timestamp=request.headers.get("X-Slack-Request-Timestamp", ""),
                    signature=request.headers.get("X-Slack-Signature", ""),
                )
            except (ValueError, TypeError, OverflowError):  # a timestamp like "abc" or "1.5"
                valid = False
            if not valid:
                log.warning("Slack: refused a request without a valid signature")
                return web.Response(status=401, text="invalid request")
            try:
                bolt_request = AsyncBoltRequest(
                    body=raw.decode("utf-8"), query=request.query_string, headers=dict(request.headers)
                )
                problem = envelope_problem(bolt_request.body)
            except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as e:
                problem = f"the body cannot be read ({type(e).__name__})"
            if problem:
                log.warning("Slack: refused a signed request: %s", problem)
                return web.Response(status=400, text="malformed request")
            bolt_response = await self.app.async_dispatch(bolt_request)
            return await to_aiohttp_response(bolt_response)

        async def health(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        app.add_routes([web.post("/slack/events", events), web.get("/health", health)])
        return app

    async def start_http(self, port: int = 3000, host: str = "0.0.0.0") -> int:
        """Serve until `stop()`; returns the bound port (pass 0 to pick a free one)."""
        if not _secret(self.settings.slack_signing_secret):
            raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET: requests are refused unless signed")
        self._open_session()
        self._runner = web.AppRunner(self.web_app(), access_log=None)
        await self._runner.setup()
        # a deep accept backlog: a burst of events must not wait for a SYN retransmit (1 s)
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port  # type: ignore[union-attr]
        log.info("Slack: listening for HTTP requests on %s:%s/slack/events", host, bound)
        return int(bound)

    # --- shutdown -------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop receiving, let posts in flight finish, close connections. Posts the engine makes
        afterwards (turns finishing during shutdown) still go out, on their own connections."""
        if self.socket_handler is not None:
            await self.socket_handler.close_async()
            self.socket_handler = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.listeners.idle()  # what was started after an ack (posts, respond())
        if self._session is not None:
            # Posts still under way (the engine finishes its running turns after this) finish
            # on the pooled session; later ones open their own. Then the pool closes.
            session, self._session = self._session, None
            self.client.session = None
            if not await self.outbox.drain(timeout=10.0):
                log.warning("Slack: closing with Web API calls still in flight")
            await session.close()
