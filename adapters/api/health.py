"""`/health` (the process answers) and `/ready` (it can do its work: the database answers, the
personas are loaded, the platforms are connected). Neither needs a token: probes have none, and
neither says more than which part is not ready."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


class Ready(BaseModel):
    status: str
    #: each check -> "ok", or what is not ready
    checks: dict[str, str]


@router.get("/health", response_class=PlainTextResponse, responses={200: {"content": {"text/plain": {}}}})
async def health() -> str:
    """Alive: the process answers HTTP (`ok`, as Slack's HTTP mode always answered)."""
    return "ok"


async def basic_checks(app) -> dict[str, str | None]:
    """What every server can check itself: the memory answers a query, personas are loaded."""
    checks: dict[str, str | None] = {}
    try:
        await app.memory.ping()
        checks["database"] = None
    except Exception:  # noqa: BLE001 - the probe says which part; the log says why
        log.warning("ready: the database does not answer", exc_info=True)
        checks["database"] = "the database does not answer"
    checks["personas"] = None if len(app.personas) else "no personas are loaded"
    return checks


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready}})
async def ready(request: Request) -> JSONResponse:
    """Ready: 200 when every check passes, else 503 naming what is not ready."""
    checks = await basic_checks(request.app.state.orchestra)
    readiness = request.app.state.readiness
    if readiness is not None:
        try:
            checks.update(await readiness())
        except Exception:  # noqa: BLE001
            log.warning("ready: a readiness check failed", exc_info=True)
            checks["platforms"] = "a readiness check failed"
    ok = all(v is None for v in checks.values())
    body = Ready(status="ready" if ok else "not_ready", checks={k: v or "ok" for k, v in checks.items()})
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
