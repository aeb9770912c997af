"""A running operator API for the resource routes' tests (personas, investigations, crews,
metrics): the bootstrap `App` on a real SQLite file, served by uvicorn on an ephemeral port inside
the test's event loop, and an httpx client for it that sends the write token by default.

It uses `adapters.api.app.create_app`, the app the composition root serves.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

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


def build_api(app: App, tokens: ApiTokens):
    from adapters.api.app import create_app

    return create_app(app, tokens=tokens)


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
