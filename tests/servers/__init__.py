"""Local HTTP servers that speak third-party wire formats, for testing real SDK clients.

Each server listens on 127.0.0.1 with a random port, records every request, and answers from a
script: a queue of `Scripted` replies, then `default` (when set) for everything after. Point the
real SDK at `server.url` (its `base_url`) and script what the API would say.

    async def test_x(openai_server):
        openai_server.reply_json({"answer": 42})
        client = AsyncOpenAI(base_url=openai_server.url, api_key="test")

Fixtures (`openai_server`, `anthropic_server`, `discord_server`, `notion_server`) live in `tests.servers.fixtures`; a test module
gets them with `pytest_plugins = ["tests.servers.fixtures"]` (or by importing them).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from aiohttp import web

#: Sent with every 429 and 5xx so the SDKs' retries wait 10 ms, not half a second.
FAST_RETRY = {"retry-after-ms": "10"}


@dataclass
class Scripted:
    """One scripted answer: a status, a JSON body (or raw text), headers, and a delay first."""

    status: int = 200
    body: Any = None  # dict/list: sent as JSON; str: sent as is; callable(request_body) -> body
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (longer than the client timeout: a timeout)


#: A reply, or a function of the request body that chooses one (to act like a real server).
Answer = Union[Scripted, Callable[[Any], Scripted]]


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it was not JSON


class ScriptedServer:
    """An aiohttp server answering from a script. Subclasses add the routes of one API."""

    def __init__(self) -> None:
        self.script: deque[Answer] = deque()
        self.default: Answer | None = None
        self.requests: list[Recorded] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- scripting ------------------------------------------------------------------------

    def push(self, *replies: Answer) -> None:
        self.script.extend(replies)

    def always(self, reply: Answer | None) -> None:
        """Answer this way whenever the queue is empty (None: back to the built-in answer)."""
        self.default = reply

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    # --- serving --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give an SDK."""
        return f"http://127.0.0.1:{self.port}"

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def fallback_reply(self, body: Any) -> Scripted:
        """What to answer when nothing is scripted: the API's normal, successful answer."""
        raise NotImplementedError

    def render(self, reply: Scripted, body: Any) -> Any:
        """Turn a scripted body into the wire body (subclasses wrap bare values)."""
        return reply.body(body) if callable(reply.body) else reply.body

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body))
        if self.script:
            reply = self.script.popleft()
        elif self.default is not None:
            reply = self.default
        else:
            reply = self.fallback_reply
        if not isinstance(reply, Scripted):
            reply = reply(body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        payload = self.render(reply, body)
        headers = {"x-request-id": f"req_{len(self.requests)}", **reply.headers}
        if isinstance(payload, str):
            return web.Response(status=reply.status, text=payload, headers=headers, content_type="application/json")
        return web.json_response(payload, status=reply.status, headers=headers)

    async def start(self) -> "ScriptedServer":
        app = web.Application()
        app.add_routes(self.routes())
        # handler_cancellation: a client that timed out hangs up, and the delayed handler stops
        # at once instead of holding up shutdown.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "ScriptedServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
