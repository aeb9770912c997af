"""Slack's `POST /slack/events` on its lean path (`adapters.slack.http`): taken before the API's
middleware and routing, yet with the same guarantees: signature checked, stored before the 200 (a
request that cannot be stored gets no 200, and its retry is stored once),
the API's body limit for a body of unknown or excessive length, the engine's work held back until
the 200 is written; and a start-up heap frozen so a cold burst does not pay a full collection.

Real uvicorn, real FastAPI app from `create_app`, real Bolt app, the local Slack; an httpx client.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
from typing import Any

import httpx

from adapters.api.access import ApiTokens
from adapters.api.app import create_app
from adapters.api.server import HttpServer
from adapters.slack.app import SlackAdapter
from bot.bootstrap import bootstrap, offline_provider
from bot.settings import load_settings
from engine.intake import Intake
from tests.servers.slack_api import event_envelope, mention_event, signed_headers
from tests.test_slack import SECRET, FakeEngine, build_rig, make_settings, slack_api  # noqa: F401 - fixture

__all__ = ["slack_api"]


class SeenByMiddleware:
    """An ASGI middleware on the API's app: which paths went through the API's stack."""

    def __init__(self, app: Any, seen: list[str]):
        self.app, self.seen = app, seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


def signed(channel: str) -> tuple[str, dict[str, str]]:
    body = json.dumps(event_envelope(mention_event("sophia, why did sign-ups drop?", channel=channel)))
    return body, signed_headers(SECRET, body, content_type="application/json")


async def test_on_the_api_app_slack_events_skip_the_api_stack_and_keep_its_body_limit(slack_api, tmp_path) -> None:  # noqa: F811
    app = await bootstrap(load_settings(db=tmp_path / "memory.db"), provider=offline_provider())
    adapter = SlackAdapter(make_settings(slack_api, tmp_path), app.engine)
    app.engine.register_outbox("slack", adapter.outbox)
    await adapter.verify(socket_mode=False)
    seen: list[str] = []
    api = create_app(app, tokens=ApiTokens(), slack=adapter, max_body=4096)
    api.add_middleware(SeenByMiddleware, seen=seen)
    await app.engine.start()
    adapter.served_elsewhere()
    server = HttpServer(api, host="127.0.0.1", port=0, grace=0.5)
    port = await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            body, headers = signed("C0LEAN")
            assert (await client.post("/slack/events", content=body, headers=headers)).status_code == 200
            unsigned = {"Content-Type": "application/json"}
            assert (await client.post("/slack/events", content=body, headers=unsigned)).status_code == 401
            assert (await client.get("/health")).status_code == 200
            assert seen == ["/health"]  # the lean path: the API's middleware never saw Slack's requests

            body, headers = signed("C0CHUNKED")

            async def chunks():  # no Content-Length: the API's stack (its body limit), then Slack's route
                yield body[:10].encode()
                yield body[10:].encode()

            assert (await client.post("/slack/events", content=chunks(), headers=headers)).status_code == 200
            big = json.dumps(event_envelope(mention_event("sophia, " + "why? " * 2000, channel="C0BIG")))
            too_big = await client.post("/slack/events", content=big,
                                        headers=signed_headers(SECRET, big, content_type="application/json"))
            assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
            assert seen[1:] == ["/slack/events", "/slack/events"]

            body, headers = signed("C0LOCKED")  # not stored: no 200, so Slack sends it again
            await app.memory._db.execute("PRAGMA busy_timeout = 50")  # noqa: SLF001
            other = sqlite3.connect(tmp_path / "memory.db", isolation_level=None)
            try:
                other.execute("BEGIN EXCLUSIVE")
                assert (await client.post("/slack/events", content=body, headers=headers)).status_code >= 500
                other.execute("ROLLBACK")
            finally:
                other.close()
            retry = {**headers, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}
            assert (await client.post("/slack/events", content=body, headers=retry)).status_code == 200
            assert (await client.post("/slack/events", content=body, headers=retry)).status_code == 200
            assert len(seen) == 3  # still the lean path
        assert sorted(await stored_channels(app)) == ["C0CHUNKED", "C0LEAN", "C0LOCKED"]
        await app.engine.wait_idle()
        assert sorted(c["channel"] for c in slack_api.posts()) == ["C0CHUNKED", "C0LEAN", "C0LOCKED"]  # once each
    finally:
        await server.stop()
        await adapter.stop()
        await app.aclose(grace=5.0)


async def stored_channels(app: Any) -> list[str]:
    rows = await app.memory._rows("SELECT channel FROM tasks")  # noqa: SLF001 - every task, whatever its status
    return [r[0] for r in rows]


class EngineWithIntake(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.intake = Intake(patience=60.0)


async def test_the_engine_holds_back_work_until_the_200_is_written(slack_api, tmp_path) -> None:  # noqa: F811
    """The acknowledgement is owed until its bytes are handed to the connection, not only until
    the answer is decided: work released before that would run ahead of the 200 under a burst."""
    engine = EngineWithIntake()
    rig = await build_rig(slack_api, tmp_path, engine=engine)
    await rig.adapter.verify(socket_mode=False)
    app = rig.adapter.web_app()
    body, headers = signed("C0OWED")
    scope = {
        "type": "http", "method": "POST", "path": "/slack/events", "raw_path": b"/slack/events", "query_string": b"",
        "root_path": "", "scheme": "http", "http_version": "1.1", "server": ("127.0.0.1", 3000), "client": ("127.0.0.1", 5),
        "headers": [(b"content-length", str(len(body)).encode()),
                    *((k.lower().encode(), v.encode()) for k, v in headers.items())],
    }
    owed_when_sent: list[tuple[int, int]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body.encode(), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            owed_when_sent.append((message["status"], engine.intake.owed))

    try:
        await app(scope, receive, send)
        assert owed_when_sent == [(200, 1)] and engine.intake.owed == 0
        assert [t.channel for t in engine.tasks] == ["C0OWED"]
    finally:
        await rig.settle()
        await rig.adapter.stop()


async def test_start_up_freezes_its_heap_as_the_platform_says_it_is_connected(slack_api, tmp_path) -> None:  # noqa: F811
    """What start-up built is out of the collector's sight before the first request: a cold
    burst's first full collection walked it all (186 ms, every 200 waiting). The composition root
    freezes it as a platform says it is connected (`bot.platforms`, `bot.heap`)."""
    from bot.platforms import SlackPlatform

    rig = await build_rig(slack_api, tmp_path)
    said: list[str] = []
    platform = SlackPlatform(rig.adapter, http_port=0, announce=said.append)
    gc.unfreeze()  # whatever an earlier test in this process froze
    running = asyncio.create_task(platform.run())
    try:
        assert gc.get_freeze_count() == 0
        for _ in range(500):
            if said:
                break
            await asyncio.sleep(0.01)
        assert said and said[0].startswith("Slack: connected")
        assert gc.get_freeze_count() > 0
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        gc.unfreeze()
        await rig.settle()
        await rig.adapter.stop()
