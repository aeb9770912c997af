"""Who may call the API: `ORCHESTRA_API_TOKEN` may read and write, `ORCHESTRA_API_READ_TOKEN`
only read. Routes declare what they need with `Depends(reader)` or `Depends(writer)`.

With no token configured the API does not exist to the outside: every `/api/` path answers 404.
Tokens are compared in constant time, and a refused request is logged without its token.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request

from adapters.api.errors import ApiError

log = logging.getLogger(__name__)


class Access(StrEnum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class ApiTokens:
    write: str | None = None
    read: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.write)


def _same(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def access_of(request: Request) -> Access:
    tokens: ApiTokens = request.app.state.tokens
    if not tokens.enabled:
        raise ApiError(404, "not_found", "Not found.")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() == "bearer" and given:
        if _same(given, tokens.write):
            return Access.WRITE
        if _same(given, tokens.read):
            return Access.READ
    log.warning("API: refused %s %s from %s (%s token)", request.method, request.url.path,
                request.client.host if request.client else "?", "wrong" if given else "no")
    raise ApiError(401, "unauthorized", "Send the API token as `Authorization: Bearer <token>` (ORCHESTRA_API_TOKEN).")


async def reader(request: Request) -> Access:
    """Any valid token. ApiError 401 when it is missing or wrong (404 when the API is off)."""
    return access_of(request)


async def writer(request: Request) -> Access:
    """The read-write token only: the read-only token gets 403."""
    access = access_of(request)
    if access is not Access.WRITE:
        raise ApiError(403, "read_only", "This token can only read; changes need ORCHESTRA_API_TOKEN.")
    return access
