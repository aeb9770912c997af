"""What every request passes before a route: the API's door (a token for `/api/`; 404 for all of it
when no token is configured) and the body size limit (413 before any route reads a byte more)."""

from __future__ import annotations

import logging

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.api.access import access_of
from adapters.api.errors import ApiError, json_error

log = logging.getLogger(__name__)

#: Under `/api/` but readable without a token (once the API is on): the API's own description.
OPEN_API_PATHS = frozenset({"/api/openapi.json", "/api/docs", "/api/docs/oauth2-redirect"})
#: How much of a refused body is read and dropped so the client hears the 413.
DRAIN_LIMIT = 16 * 1024 * 1024

class BodyLimit:
    """Bodies over `max_body` bytes get 413 before any route reads them: by Content-Length when
    it is sent, else by counting (a chunked body is buffered up to the limit, then replayed)."""

    def __init__(self, app: ASGIApp, max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._refuse(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        log.warning("API: refused a body over %d bytes on %s", self.max_body, scope.get("path"))
        # read (and drop) what is still coming, within reason: a client still sending when the
        # connection closes never sees the answer
        drained = 0
        while drained < DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
            drained += len(message.get("body", b""))
        response = json_error(413, "too_large", f"The body is over {self.max_body} bytes (ORCHESTRA_API_MAX_BODY).",
                               {"max_bytes": self.max_body}, headers={"Connection": "close"})
        await response(scope, receive, send)


class ApiDoor:
    """Every `/api/` request needs a valid token (routes that change things also ask `writer`);
    with no token configured the whole of `/api/` answers 404 and says nothing else."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/api" or path.startswith("/api/"):
            request = Request(scope)
            try:
                if path in OPEN_API_PATHS:
                    if not request.app.state.tokens.enabled:
                        raise ApiError(404, "not_found", "Not found.")
                else:
                    access_of(request)
            except ApiError as e:
                await json_error(e.status, e.code, e.message, e.details)(scope, receive, send)
                return
        await self.app(scope, receive, send)
