"""One error shape for every API answer that is not a success:
`{"error": {"code": "...", "message": "...", "details": ...}}`.

Routers raise `ApiError`; `install_error_handlers` turns it, FastAPI's validation errors and
anything unexpected into that shape (never a stack trace, an internal host or a secret)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer a client can act on. `message` is safe to show; `details` is JSON."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def json_error(status: int, code: str, message: str, details: Any = None,
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
    return json_error(exc.status, exc.code, exc.message, exc.details)


async def _on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return json_error(400, "malformed_json", "The body is not valid JSON: send a JSON object.")
    problems = _problems(errors)
    names = ", ".join(sorted({p["field"] for p in problems}))
    return json_error(422, "invalid", f"Some fields are not right: {names}.", problems)


def _allowed(request: Request) -> str:
    """Every method the path takes (Starlette names only those of the first route that matched;
    included routers nest their routes, so each method is asked of the whole table)."""
    from starlette.routing import Match

    allowed = [method for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
               if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                      for route in request.app.router.routes)]
    return ", ".join(allowed)


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    code = STATUS_CODES.get(status, "error")
    message = STATUS_MESSAGES.get(status) or (exc.detail if isinstance(exc.detail, str) and status < 500 else "Error.")
    headers = dict(exc.headers) if getattr(exc, "headers", None) else None
    if status == 405:
        headers = {**(headers or {}), "Allow": _allowed(request)}
    return json_error(status, code, message, headers=headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("API: %s %s failed", request.method, request.url.path, exc_info=exc)
    return json_error(500, "internal", "Something went wrong on our side; it is in the log. Try again.")


def install_error_handlers(api: FastAPI) -> None:
    api.add_exception_handler(ApiError, _on_api_error)  # type: ignore[arg-type]
    api.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    api.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    api.add_exception_handler(Exception, _on_unexpected)


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


def document_errors(api: FastAPI) -> None:
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
