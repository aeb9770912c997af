"""A running operator API for tests: the bootstrap `App` on a real SQLite file, served by uvicorn
on an ephemeral port inside the test's event loop, and an httpx client for it.

It uses `adapters.api.app.create_app` (the server the composition root serves). Until that
module is on this branch, a minimal FastAPI app with A2's routers and the error shape stands in.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import shutil
import socket
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import AsyncIterator

import httpx
import uvicorn

from adapters.api.access import ApiTokens
from bot.bootstrap import App, bootstrap
from bot.settings import load_settings
from engine.providers import OfflineProvider

WRITE = "write-token-for-tests"
READ = "read-token-for-tests"


def defaults_copy(tmp_path: Path) -> Path:
    path = tmp_path / "personas.yaml"
    shutil.copy(resources.files("engine.personas").joinpath("defaults.yaml"), path)
    return path


def _stand_in_app(app: App, tokens: ApiTokens):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from adapters.api.errors import ApiError, error_body

    api = FastAPI(openapi_url="/api/openapi.json")
    api.state.orchestra = app
    api.state.tokens = tokens

    @api.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return JSONResponse(error_body("malformed_json", "The body is not valid JSON."), status_code=400)
        problems = [{"field": ".".join(str(p) for p in e["loc"][1:]), "in": str(e["loc"][0]), "problem": e["msg"]}
                    for e in exc.errors()]
        return JSONResponse(error_body("invalid", "Some fields are not right.", problems), status_code=422)

    @api.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body("error", str(exc.detail)), status_code=exc.status_code)

    for name in ("personas", "investigations", "crews", "metrics"):
        if importlib.util.find_spec(f"adapters.api.{name}") is not None:
            api.include_router(importlib.import_module(f"adapters.api.{name}").router)
    return api


def build_api(app: App, tokens: ApiTokens):
    if importlib.util.find_spec("adapters.api.app") is not None:
        from adapters.api.app import create_app

        return create_app(app, tokens=tokens)
    return _stand_in_app(app, tokens)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def serve(asgi) -> AsyncIterator[str]:
    """uvicorn serving `asgi` in this loop; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def running_api(tmp_path: Path, *, personas_file: Path | None = None, tokens: ApiTokens | None = None,
                      provider=None, **settings) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    """The bot (offline provider, engine started) and a client sending the write token."""
    app = await bootstrap(load_settings(db=tmp_path / "memory.db", personas_file=personas_file, **settings),
                          provider=provider or OfflineProvider())
    await app.engine.start()
    tokens = tokens or ApiTokens(write=WRITE, read=READ)
    try:
        async with serve(build_api(app, tokens)) as url:
            async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {WRITE}"},
                                         timeout=30) as client:
                yield app, client
    finally:
        await app.aclose()
