"""The API as it runs: a bootstrapped app (offline provider, real SQLite in tmp_path), the ASGI app
from `create_app`, uvicorn on an ephemeral port in this loop, and an httpx client for it."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

import httpx

from adapters.api.access import ApiTokens
from adapters.api.app import create_app
from adapters.api.server import HttpServer
from bot.bootstrap import bootstrap, offline_provider
from bot.settings import load_settings

WRITE = "write-token-0123456789"
READ = "read-token-0123456789"


@asynccontextmanager
async def running_api(tmp_path, *, tokens: ApiTokens | None = ApiTokens(WRITE, READ), max_body: int = 1024 * 1024,
                      provider=None, **settings) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    app = await bootstrap(load_settings(db=tmp_path / "memory.db", **settings), provider=provider or offline_provider())
    api = create_app(app, tokens=tokens or ApiTokens(), max_body=max_body)
    await app.engine.start()
    server = HttpServer(api, host="127.0.0.1", port=0, grace=0.5)
    port = await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client, app
    finally:
        await server.stop()
        await app.aclose()


def auth(token: str = WRITE) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
