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

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.api.access import ApiTokens, access_of
from adapters.api.errors import ApiError, error_body

if TYPE_CHECKING:
    from adapters.api.outbox import ApiOutbox
    from bot.bootstrap import App

log = logging.getLogger(__name__)

#: The routers other parts of the API bring; each module exposes `router`. A module not there
#: yet (a branch not merged, an extra not installed) is skipped, not an error.
OPTIONAL_ROUTERS = ("personas", "investigations", "crews", "metrics")
#: Under `/api/` but readable without a token (once the API is on): the API's own description.
OPEN_API_PATHS = frozenset({"/api/openapi.json", "/api/docs", "/api/docs/oauth2-redirect"})

DEFAULT_MAX_BODY = 1024 * 1024
#: How much of a refused body is read and dropped so the client hears the 413.
DRAIN_LIMIT = 16 * 1024 * 1024

#: What /ready asks: each check's name -> None when ready, or what is wrong (safe to show).
Readiness = Callable[[], Awaitable[dict[str, str | None]]]


def _json_error(status: int, code: str, message: str, details: Any = None,
                headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


# --- error handlers -----------------------------------------------------------------------------

STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}
STATUS_MESSAGES = {
    404: "Not found. The API's routes are listed at /api/openapi.json.",
    405: "This path does not take that method; see /api/openapi.json.",
}


def _field(loc: tuple | list) -> str:
    """`("body", "text")` -> `text`; `("query", "limit")` -> `limit` (where it was goes in `in`)."""
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts) or "body"


def _problems(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's errors, without the input echoed back (it may hold a secret) or its URLs."""
    out = []
    for e in errors:
        loc = list(e.get("loc") or ())
        kind = str(e.get("type", ""))
        message = "unknown field: remove it" if kind == "extra_forbidden" else str(e.get("msg", "invalid"))
        out.append({"field": _field(loc), "in": str(loc[0]) if loc else "body", "problem": message})
    return out


async def _on_api_error(_: Request, exc: ApiError) -> JSONResponse:
    return _json_error(exc.status, exc.code, exc.message, exc.details)


async def _on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return _json_error(400, "malformed_json", "The body is not valid JSON: send a JSON object.")
    problems = _problems(errors)
    names = ", ".join(sorted({p["field"] for p in problems}))
    return _json_error(422, "invalid", f"Some fields are not right: {names}.", problems)


def _allowed(request: Request) -> str:
    """Every method the path takes (Starlette names only those of the first route that matched)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "__none__"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    code = STATUS_CODES.get(status, "error")
    message = STATUS_MESSAGES.get(status) or (exc.detail if isinstance(exc.detail, str) and status < 500 else "Error.")
    headers = dict(exc.headers) if getattr(exc, "headers", None) else None
    if status == 405:
        headers = {**(headers or {}), "Allow": _allowed(request)}
    return _json_error(status, code, message, headers=headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("API: %s %s failed", request.method, request.url.path, exc_info=exc)
    return _json_error(500, "internal", "Something went wrong on our side; it is in the log. Try again.")


def install_error_handlers(api: FastAPI) -> None:
    api.add_exception_handler(ApiError, _on_api_error)  # type: ignore[arg-type]
    api.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    api.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    api.add_exception_handler(Exception, _on_unexpected)


# --- middleware: body size and the API's door ---------------------------------------------------


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
        response = _json_error(413, "too_large", f"The body is over {self.max_body} bytes (ORCHESTRA_API_MAX_BODY).",
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
                await _json_error(e.status, e.code, e.message, e.details)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- the app ------------------------------------------------------------------------------------


# --- the OpenAPI document: errors in the shape they are sent ------------------------------------

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
    }},
}


def _document_errors(api: FastAPI) -> None:
    """FastAPI documents 422 as its own `HTTPValidationError`; ours is the one error shape. Every
    operation gets it for 422 and for any other 4xx/5xx (a client, or schemathesis, can rely on it)."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        from fastapi.openapi.utils import get_openapi

        doc = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["Error"] = ERROR_SCHEMA
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for operations in doc.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {"description": "A field is missing, unknown or not right", **error}
                responses.setdefault("4XX", {"description": "Refused: see error.message", **error})
                responses.setdefault("5XX", {"description": "Failed on our side", **error})
        api.openapi_schema = doc
        return doc

    api.openapi = openapi  # type: ignore[method-assign]


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


def create_app(app: "App", *, tokens: ApiTokens, slack: Any = None, readiness: Readiness | None = None,
               max_body: int = DEFAULT_MAX_BODY) -> FastAPI:
    """The ASGI app for `orchestra serve` and Slack's HTTP mode.

    `slack`: the `SlackAdapter` whose `/slack/events` this app serves (None: no Slack route).
    `readiness`: what `/ready` asks (the composition root knows the platforms); None: only the
    database and the personas are checked.
    """
    from adapters.api import health, tasks

    api = FastAPI(
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
    _include_optional(api)
    if slack is not None:
        from adapters.slack.http import slack_routes

        for route in slack_routes(slack):
            api.router.routes.append(route)
    _document_errors(api)
    # the last added is outermost: the door first (no token, nothing is read), then the size
    api.add_middleware(BodyLimit, max_body=max_body)
    api.add_middleware(ApiDoor)
    return api
