"""Slack's HTTP mode as Starlette routes: `POST /slack/events` for events, commands and buttons.

The same routes serve on their own (`SlackAdapter.start_http`, e.g. tests and benchmarks) or on
the operator API's app (`adapters.api.app.create_app`), so Slack and the API share one port.
Signature first, then the body: whatever arrives gets a 4xx and one log line, never a 500 or a
traceback. Bolt checks the signature again, and answers the rest.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from adapters.slack.translate import envelope_problem

if TYPE_CHECKING:
    from adapters.slack.app import SlackAdapter

log = logging.getLogger("adapters.slack.app")  # the logger these lines always came from


def slack_routes(adapter: "SlackAdapter") -> list[Route]:
    """Acknowledgements first, as in Socket Mode (`engine.intake`): from the body's arrival to the
    answer Bolt gives once the event is stored, the engine holds back work that is not already
    under way, so under a burst the HTTP 200s do not queue behind other events' work."""
    intake = getattr(adapter.engine, "intake", None)
    secret = adapter.settings.slack_signing_secret
    verifier = SignatureVerifier(secret.get_secret_value() if secret is not None else "")

    async def events(request: Request) -> Response:
        if intake is None:
            return await answer(request)
        async with intake.taking():
            return await answer(request)

    async def answer(request: Request) -> Response:
        raw = await request.body()
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
            return PlainTextResponse("invalid request", status_code=401)
        try:
            bolt_request = AsyncBoltRequest(
                body=raw.decode("utf-8"), query=request.url.query, headers=dict(request.headers)
            )
            problem = envelope_problem(bolt_request.body)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as e:
            problem = f"the body cannot be read ({type(e).__name__})"
        if problem:
            log.warning("Slack: refused a signed request: %s", problem)
            return PlainTextResponse("malformed request", status_code=400)
        shortcut = adapter.event_shortcut()  # a mention or message: stored without Bolt's dispatch
        taken = await shortcut.answer(bolt_request.body) if shortcut is not None else None
        if taken is not None:
            return to_starlette_response(taken)
        return to_starlette_response(await adapter.app.async_dispatch(bolt_request))

    return [Route("/slack/events", events, methods=["POST"], include_in_schema=False)]


def slack_only_app(adapter: "SlackAdapter") -> Starlette:
    """`/slack/events` and `/health`, without the API: what `SlackAdapter.start_http` serves."""

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[*slack_routes(adapter), Route("/health", health, methods=["GET"])])
