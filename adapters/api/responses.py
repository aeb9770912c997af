"""The error answers a route may give, for its OpenAPI entry: every one has the API's one error
shape (`{"error": {"code", "message", "details"}}`), so a client (and schemathesis) can check
them like any other answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, for programs: not_found, invalid, read_only, ...")
    message: str = Field(description="for people: what happened and what to do next")
    details: Any = Field(None, description="for validation errors: [{field, in, problem}]")


class ErrorBody(BaseModel):
    error: ErrorDetail


_WHAT = {
    400: "The body is not valid JSON.",
    401: "No token, or a wrong one.",
    403: "The read-only token cannot change anything.",
    404: "Not found (or the API is off).",
    409: "The change conflicts with the current state.",
    413: "The body is larger than ORCHESTRA_API_MAX_BODY.",
    422: "Invalid fields, each named in `details`.",
    501: "A feature that is not installed; `details.install` says how.",
}

#: What every API route may answer besides its success.
COMMON = (400, 401, 404, 413, 422)


def errors(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the common errors plus `statuses`, each with the error shape."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in (*COMMON, *statuses):
        out[status] = {"model": ErrorBody, "description": described.get(f"s{status}", _WHAT[status])}
    return out
