"""Slack's HTTP mode: `POST /slack/events` for events, commands and buttons, as one lean ASGI app.

The same app serves on its own (`SlackAdapter.start_http`, e.g. tests and benchmarks) or on the
operator API's app (`adapters.api.app.create_app`), so Slack and the API share one port. Either
way a POST to `/slack/events` is taken before the web framework's middleware and routing
(`takes`): under a burst, every request's 200 waits for the CPU of the requests before it, and
FastAPI's stack (error and body-limit middlewares, the API's door, route matching through every
API route, a Request object) cost more than the signature check and the JSON together. What a
request needs is kept: its body (at most `max_body` bytes), its signature, the event stored
before the 200. A body that does not say its length, or says one over the limit, goes the
framework's way (the API's body limit answers 413, then the same app).

Signature first, then the body: whatever arrives gets a 4xx and one log line, never a traceback.
A mention or a message (`adapters.slack.shortcut`) is stored and answered without Bolt; anything
else goes to Bolt, which checks the signature again and answers it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from adapters.slack.translate import envelope_problem

if TYPE_CHECKING:
    from adapters.slack.app import SlackAdapter

log = logging.getLogger("adapters.slack.app")  # the logger these lines always came from

PATH = "/slack/events"
#: The largest body taken on the lean path (the API's ORCHESTRA_API_MAX_BODY when on its app).
DEFAULT_MAX_BODY = 1024 * 1024
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
#: status, headers, body; or a Starlette response (Bolt's with cookies: OAuth, never an event)
Answer = tuple[int, list[tuple[bytes, bytes]], bytes] | Response


def takes(scope: Scope, max_body: int) -> bool:
    """Whether a request is Slack's to answer before the framework: a POST to /slack/events whose
    Content-Length is there and within `max_body` (anything else goes the framework's way)."""
    if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
        return False
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.isdigit() and int(value) <= max_body
    return False


class SlackEvents:
    """The ASGI app for `POST /slack/events`.

    Acknowledgements first, as in Socket Mode (`engine.intake`): from the body's arrival until the
    answer is written to the connection, the engine holds back work that is not already under
    way, so under a burst the 200s do not queue behind other events' work.
    """

    def __init__(self, adapter: "SlackAdapter"):
        self.adapter = adapter
        self.intake = getattr(adapter.engine, "intake", None)
        secret = adapter.settings.slack_signing_secret
        self.verifier = SignatureVerifier(secret.get_secret_value() if secret is not None else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.intake is None:
            await self._serve(scope, receive, send)
            return
        async with self.intake.taking():
            await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await _body(receive)
        if raw is None:  # the client went away: nothing to answer
            return
        try:
            answer = await self.answer(scope, raw)
        except Exception:  # noqa: BLE001 - a 500 (Slack sends it again) and the log, never a traceback
            log.error("Slack: a request to %s failed", PATH, exc_info=True)
            answer = (500, _TEXT, b"internal error")
        if isinstance(answer, Response):  # a Bolt response with cookies: Starlette writes them
            await answer(scope, receive, send)
            return
        status, headers, body = answer
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: Scope, raw: bytes) -> "Answer":
        """(status, headers, body) for a request and its body (a Response when it sets cookies)."""
        wanted = {b"x-slack-request-timestamp": "", b"x-slack-signature": "", b"content-type": ""}
        for name, value in scope["headers"]:
            if name in wanted:
                wanted[name] = value.decode("latin-1")
        try:
            valid = self.verifier.is_valid(
                body=raw, timestamp=wanted[b"x-slack-request-timestamp"], signature=wanted[b"x-slack-signature"]
            )
        except (ValueError, TypeError, OverflowError):  # a timestamp like "abc" or "1.5"
            valid = False
        if not valid:
            log.warning("Slack: refused a request without a valid signature")
            return 401, _TEXT, b"invalid request"
        try:
            text = raw.decode("utf-8")
            # Bolt's own rule (`parse_body`) for a JSON body: the Events API's, and the only kind
            # the shortcut takes; forms (commands, clicks) are parsed by Bolt below
            payload = json.loads(text) if text.startswith("{") or _json(wanted[b"content-type"]) else None
            problem = envelope_problem(payload) if payload is not None else None
        except (ValueError, TypeError, RecursionError) as e:
            payload, problem = None, f"the body cannot be read ({type(e).__name__})"
        if problem:
            return _malformed(problem)
        shortcut = self.adapter.event_shortcut()  # a mention or message: stored without Bolt's dispatch
        taken = await shortcut.answer(payload) if shortcut is not None and payload is not None else None
        if taken is not None:
            return _written(taken)
        try:
            bolt_request = AsyncBoltRequest(
                body=text, query=scope.get("query_string", b"").decode("latin-1"), headers=_headers(scope)
            )
            problem = envelope_problem(bolt_request.body)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as e:
            problem = f"the body cannot be read ({type(e).__name__})"
        if problem:
            return _malformed(problem)
        return _written(await self.adapter.app.async_dispatch(bolt_request))


async def _body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers for Bolt, as Starlette's `dict(request.headers)` gave them (the
    first of repeated names)."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return out


def _malformed(problem: str) -> Answer:
    log.warning("Slack: refused a signed request: %s", problem)
    return 400, _TEXT, b"malformed request"


def _written(response: BoltResponse) -> Answer:
    if response.cookies():
        return to_starlette_response(response)
    headers = [(k.encode("latin-1"), str(v).encode("latin-1"))
               for k, v in response.first_headers_without_set_cookie().items() if k.lower() != "content-length"]
    body = response.body if isinstance(response.body, bytes) else str(response.body or "").encode("utf-8")
    return response.status, headers, body


def slack_routes(adapter: "SlackAdapter") -> list[Route]:
    """`/slack/events` as a framework route: where requests the lean path leaves (a chunked or
    oversized body, after the API's body limit) arrive, answered by the same `SlackEvents`."""
    return [Route(PATH, SlackEvents(adapter), methods=["POST"], include_in_schema=False)]


class SlackFirst:
    """An ASGI app that answers what `takes` picks with `events` and passes the rest to `app`."""

    def __init__(self, app: Any, events: SlackEvents, max_body: int = DEFAULT_MAX_BODY):
        self.app, self.events, self.max_body = app, events, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if takes(scope, self.max_body):
            await self.events(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def slack_only_app(adapter: "SlackAdapter") -> SlackFirst:
    """`/slack/events` and `/health`, without the API: what `SlackAdapter.start_http` serves."""

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    routes = slack_routes(adapter)
    inner = Starlette(routes=[*routes, Route("/health", health, methods=["GET"])])
    return SlackFirst(inner, routes[0].endpoint)
