"""One error shape for every API answer that is not a success:
`{"error": {"code": "...", "message": "...", "details": ...}}`.

Routers raise `ApiError`; `install_error_handlers` turns it, FastAPI's validation errors and
anything unexpected into that shape (never a stack trace, an internal host or a secret)."""

from __future__ import annotations

from typing import Any


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
