"""The one ASGI app: the operator API under `/api/`, `/health` and `/ready`, `/metrics`, and Slack's
`/slack/events` when Slack runs in HTTP mode: one port, one server, inside the bot's event loop.

FastAPI because validation and the OpenAPI document come with the routes, and Starlette (under
it) is what Bolt's adapter speaks. Every answer that is not a success has one shape
(`adapters.api.errors`): a client never sees a stack trace, a parser message or an internal host.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from fastapi import FastAPI

from adapters.api.access import ApiTokens
from adapters.api.errors import document_errors, install_error_handlers
from adapters.api.middleware import ApiDoor, BodyLimit

if TYPE_CHECKING:
    from adapters.api.outbox import ApiOutbox
    from bot.bootstrap import App

log = logging.getLogger(__name__)

#: The routers other parts of the API bring; each module exposes `router`. A module not there
#: yet (a branch not merged, an extra not installed) is skipped, not an error.
OPTIONAL_ROUTERS = ("personas", "investigations", "crews", "metrics")
DEFAULT_MAX_BODY = 1024 * 1024

#: What /ready asks: each check's name -> None when ready, or what is wrong (safe to show).
Readiness = Callable[[], Awaitable[dict[str, str | None]]]


def _include_optional(api: FastAPI) -> list[str]:
    included = []
    for name in OPTIONAL_ROUTERS:
        module_name = f"adapters.api.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        api.include_router(module.router)
        included.append(name)
    return included


def api_outbox(app: "App") -> "ApiOutbox":
    """The engine's outbox for platform "api" (the composition root registers it before the
    engine starts, so API tasks resume; registered here when it has not)."""
    from adapters.api.outbox import PLATFORM, ApiOutbox

    outbox = app.engine.poster.outboxes.get(PLATFORM)
    if not isinstance(outbox, ApiOutbox):
        outbox = ApiOutbox()
        app.engine.register_outbox(PLATFORM, outbox)
    return outbox


class OrchestraApi(FastAPI):
    """FastAPI, with Slack's `POST /slack/events` answered before the middleware stack when Slack
    runs over HTTP (`adapters.slack.http.takes`: a burst's 200s must not wait for the API's
    middleware and route matching). Everything else, `/slack/events` with a body of unknown or
    excessive length included, goes through the stack as before."""

    slack_events: Any = None  # adapters.slack.http.SlackEvents

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        events = self.slack_events
        if events is not None:
            from adapters.slack.http import takes

            if takes(scope, self.state.max_body):
                await events(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(app: "App", *, tokens: ApiTokens, slack: Any = None, readiness: Readiness | None = None,
               max_body: int = DEFAULT_MAX_BODY) -> FastAPI:
    """The ASGI app for `orchestra serve` and Slack's HTTP mode.

    `slack`: the `SlackAdapter` whose `/slack/events` this app serves (None: no Slack route).
    `readiness`: what `/ready` asks (the composition root knows the platforms); None: only the
    database and the personas are checked.
    """
    from adapters.api import health, tasks

    api = OrchestraApi(
        title="Orchestra operator API",
        version="1",
        description="Submit tasks to Cherry, Sophia and Karen and follow them; manage personas; "
                    "watch investigations. Send `Authorization: Bearer <ORCHESTRA_API_TOKEN>`.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    api.state.orchestra = app
    api.state.tokens = tokens
    api.state.readiness = readiness
    api.state.max_body = max_body
    api.state.api_outbox = api_outbox(app)
    install_error_handlers(api)
    api.include_router(health.router)
    api.include_router(tasks.router)
    if "metrics" in _include_optional(api):
        from adapters.api.metrics import attach

        attach(app)  # counting starts with the server, not at the first scrape
    if slack is not None:
        from adapters.slack.http import slack_routes

        routes = slack_routes(slack)
        api.router.routes.extend(routes)  # what the lean path leaves
        api.slack_events = routes[0].endpoint
    document_errors(api)
    # the last added is outermost: the door first (no token, nothing is read), then the size
    api.add_middleware(BodyLimit, max_body=max_body)
    api.add_middleware(ApiDoor)
    return api
