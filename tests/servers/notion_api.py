"""A local stand-in for the Notion API, version 2025-09-03, as notion-client 3.x speaks it.

A database holds one or more data sources; the rows (pages) live in a data source. The routes
Orchestra uses:

    GET   /v1/databases/{id}                 the database, with its `data_sources` list
    POST  /v1/databases                      create, with `initial_data_source.properties`
    GET   /v1/data_sources/{id}              the data source, with its property schema
    POST  /v1/data_sources/{id}/query        its pages: page_size, start_cursor -> has_more, next_cursor
    POST  /v1/pages                          a page in a data source (parent.data_source_id)
    PATCH /v1/pages/{id}                     properties, in_trash

Every request is recorded (`requests`, with method, path, headers and JSON body). Switches:
`rate_limit(times, retry_after)` (429 `rate_limited` with Retry-After), `fail(times, status)`
(500 `internal_server_error` / 503 `service_unavailable`), `latency` (seconds before every
answer: longer than the client's timeout is a timeout), `go_down()` / `come_back()` (nothing
listens on the port: connection refused). Rich text can be stored in several segments
(`text(value, segments=n)`), as Notion does for long or formatted text.

Build rows with the property helpers (`title`, `text`, `number`, `select`, `multi_select`,
`url`) and `add_page`; edit them as a person would in Notion with `edit_page`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

API_VERSION = "2025-09-03"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 200


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _segments(value: str, segments: int) -> list[str]:
    if segments <= 1 or len(value) < 2:
        return [value]
    size = -(-len(value) // segments)
    return [value[i : i + size] for i in range(0, len(value), size)]


def _rich(value: str, segments: int = 1) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": {"content": part, "link": None}, "plain_text": part, "href": None,
         "annotations": {"bold": False, "italic": False, "code": False, "color": "default"}}
        for part in _segments(value, segments) if part
    ]


# --- property values, as a page carries them --------------------------------------------------------


def title(value: str, segments: int = 1) -> dict[str, Any]:
    return {"type": "title", "title": _rich(value, segments)}


def text(value: str, segments: int = 1) -> dict[str, Any]:
    return {"type": "rich_text", "rich_text": _rich(value, segments)}


def number(value: float | None) -> dict[str, Any]:
    return {"type": "number", "number": value}


def select(value: str | None) -> dict[str, Any]:
    return {"type": "select", "select": {"name": value} if value else None}


def multi_select(*values: str) -> dict[str, Any]:
    return {"type": "multi_select", "multi_select": [{"name": v} for v in values]}


def url(value: str | None) -> dict[str, Any]:
    return {"type": "url", "url": value}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"object": "error", "status": status, "code": code, "message": message},
                             status=status, headers=headers)


def _fill(value: dict[str, Any]) -> dict[str, Any]:
    """A property value as sent by a client, completed the way Notion answers it (plain_text)."""
    kind = value.get("type") or next((k for k in ("title", "rich_text", "number", "select", "multi_select", "url") if k in value), None)
    out = {"type": kind, kind: value.get(kind)}
    if kind in ("title", "rich_text"):
        out[kind] = [
            {**seg, "type": "text", "plain_text": seg.get("text", {}).get("content", ""), "href": None}
            for seg in value.get(kind) or []
        ]
    return out


class NotionServer:
    """`token`, when given, is the only integration token accepted (others: 401 unauthorized)."""

    def __init__(self, *, token: str | None = None, max_page_size: int = 100):
        self.token = token
        self.max_page_size = max_page_size
        self.requests: list[Request] = []
        self.databases: dict[str, dict[str, Any]] = {}
        self.data_sources: dict[str, dict[str, Any]] = {}
        self.pages: dict[str, dict[str, Any]] = {}
        self.latency = 0.0
        self._limited = [0, 0]  # remaining, Retry-After seconds
        self._failing = [0, 500]  # remaining, status
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """NOTION_API_URL: notion-client adds /v1/ itself."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "NotionServer":
        app = web.Application()
        app.add_routes([
            web.get("/v1/databases/{id}", self._database),
            web.post("/v1/databases", self._create_database),
            web.get("/v1/data_sources/{id}", self._data_source),
            web.post("/v1/data_sources/{id}/query", self._query),
            web.post("/v1/pages", self._create_page),
            web.patch("/v1/pages/{id}", self._update_page),
        ])
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        await self._listen()
        return self

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def go_down(self) -> None:
        """Stop listening and drop open connections: every request is refused until `come_back()`."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._runner is not None and self._runner.server is not None:
            for connection in self._runner.server.connections:
                connection.force_close()

    async def come_back(self) -> None:
        if self._site is None:
            await self._listen()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "NotionServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- switches ----------------------------------------------------------------------------------

    def rate_limit(self, times: int = 1, retry_after: int = 0) -> None:
        """The next `times` requests answer 429 rate_limited with `Retry-After: retry_after`."""
        self._limited = [times, retry_after]

    def fail(self, times: int = 1, status: int = 500) -> None:
        """The next `times` requests answer `status` (500 internal_server_error, 503 service_unavailable)."""
        self._failing = [times, status]

    # --- content -----------------------------------------------------------------------------------

    def add_database(self, properties: dict[str, Any] | None = None, *, name: str = "Personas") -> tuple[str, str]:
        """A database with one data source; returns (database id, data source id)."""
        db, ds = str(uuid.uuid4()), str(uuid.uuid4())
        self.databases[db] = {"object": "database", "id": db, "title": _rich(name), "parent": {"type": "workspace"},
                              "data_sources": [{"id": ds, "name": name}], "in_trash": False}
        self.data_sources[ds] = {"object": "data_source", "id": ds, "title": _rich(name),
                                 "parent": {"type": "database_id", "database_id": db},
                                 "properties": properties or {"Name": {"type": "title", "title": {}}}}
        return db, ds

    def add_page(self, data_source: str, properties: dict[str, dict[str, Any]]) -> str:
        page = str(uuid.uuid4())
        self.pages[page] = {"object": "page", "id": page, "created_time": _now(), "last_edited_time": _now(),
                            "parent": {"type": "data_source_id", "data_source_id": data_source},
                            "in_trash": False, "url": f"https://www.notion.so/{page.replace('-', '')}",
                            "properties": {k: _fill(v) for k, v in properties.items()}}
        return page

    def edit_page(self, page: str, **properties: dict[str, Any]) -> None:
        """Change properties as a person would in Notion; `Prompt_Template=` for "Prompt Template"."""
        stored = self.pages[page]
        stored["properties"].update({k.replace("_", " "): _fill(v) for k, v in properties.items()})
        stored["last_edited_time"] = _now()

    def rows(self, data_source: str, *, in_trash: bool = False) -> list[dict[str, Any]]:
        return [p for p in self.pages.values()
                if p["parent"].get("data_source_id") == data_source and p["in_trash"] == in_trash]

    def of(self, method: str, prefix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    # --- the API -----------------------------------------------------------------------------------

    async def _gate(self, request: web.Request) -> tuple[Request, web.Response | None]:
        raw = await request.text()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        rec = Request(request.method, request.path, dict(request.headers), body)
        self.requests.append(rec)
        if self.latency:
            await asyncio.sleep(self.latency)
        answer: web.Response | None = None
        if self._limited[0] > 0:
            self._limited[0] -= 1
            answer = _error(429, "rate_limited", "You have been rate limited. Please try again in a few minutes.",
                            {"Retry-After": str(self._limited[1])})
        elif self._failing[0] > 0:
            self._failing[0] -= 1
            status = self._failing[1]
            code = "service_unavailable" if status == 503 else "internal_server_error"
            answer = _error(status, code, "Unexpected error occurred.")
        elif self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            answer = _error(401, "unauthorized", "API token is invalid.")
        elif request.headers.get("Notion-Version") != API_VERSION:
            answer = _error(400, "validation_error", f"Notion-Version {request.headers.get('Notion-Version')!r} "
                            "is not the version this stand-in speaks")
        if answer is not None:
            rec.status = answer.status
        return rec, answer

    def _not_found(self, rec: Request, kind: str, ident: str) -> web.Response:
        rec.status = 404
        return _error(404, "object_not_found", f"Could not find {kind} with ID: {ident}. Make sure the relevant "
                      "pages and databases are shared with your integration.")

    async def _database(self, request: web.Request) -> web.Response:
        rec, answer = await self._gate(request)
        if answer is not None:
            return answer
        ident = request.match_info["id"]
        db = self.databases.get(ident) or next((d for d in self.databases.values()
                                                if d["id"].replace("-", "") == ident.replace("-", "")), None)
        return web.json_response(db) if db else self._not_found(rec, "database", ident)

    async def _create_database(self, request: web.Request) -> web.Response:
        rec, answer = await self._gate(request)
        if answer is not None:
            return answer
        body = rec.body or {}
        props = (body.get("initial_data_source") or {}).get("properties")
        if not props or not any("title" in p for p in props.values()):
            rec.status = 400
            return _error(400, "validation_error", "initial_data_source.properties needs one title property")
        name = "".join(seg.get("text", {}).get("content", "") for seg in body.get("title") or []) or "Untitled"
        db, ds = self.add_database({k: {"type": next(iter(v)), **v} for k, v in props.items()}, name=name)
        self.databases[db]["parent"] = body.get("parent")
        return web.json_response(self.databases[db])

    async def _data_source(self, request: web.Request) -> web.Response:
        rec, answer = await self._gate(request)
        if answer is not None:
            return answer
        ds = self.data_sources.get(request.match_info["id"])
        return web.json_response(ds) if ds else self._not_found(rec, "data source", request.match_info["id"])

    async def _query(self, request: web.Request) -> web.Response:
        rec, answer = await self._gate(request)
        if answer is not None:
            return answer
        ident = request.match_info["id"]
        if ident not in self.data_sources:
            return self._not_found(rec, "data source", ident)
        body = rec.body or {}
        size = min(int(body.get("page_size") or 100), self.max_page_size)
        rows = sorted(self.rows(ident, in_trash=bool(body.get("in_trash"))), key=lambda p: p["created_time"])
        start = 0
        if body.get("start_cursor"):
            ids = [p["id"] for p in rows]
            if body["start_cursor"] not in ids:
                rec.status = 400
                return _error(400, "validation_error", "start_cursor is not valid")
            start = ids.index(body["start_cursor"])
        chunk = rows[start : start + size]
        more = start + size < len(rows)
        return web.json_response({"object": "list", "type": "page_or_data_source", "results": chunk,
                                  "has_more": more, "next_cursor": rows[start + size]["id"] if more else None})

    async def _create_page(self, request: web.Request) -> web.Response:
        rec, answer = await self._gate(request)
        if answer is not None:
            return answer
        body = rec.body or {}
        ds = (body.get("parent") or {}).get("data_source_id")
        if ds not in self.data_sources:
            return self._not_found(rec, "data source", str(ds))
        unknown = set(body.get("properties") or {}) - set(self.data_sources[ds]["properties"])
        if unknown:
            rec.status = 400
            return _error(400, "validation_error", f"{sorted(unknown)[0]} is not a property that exists.")
        page = self.add_page(ds, body.get("properties") or {})
        return web.json_response(self.pages[page])

    async def _update_page(self, request: web.Request) -> web.Response:
        rec, answer = await self._gate(request)
        if answer is not None:
            return answer
        page = self.pages.get(request.match_info["id"])
        if page is None:
            return self._not_found(rec, "page", request.match_info["id"])
        body = rec.body or {}
        schema = self.data_sources[page["parent"]["data_source_id"]]["properties"]
        unknown = set(body.get("properties") or {}) - set(schema)
        if unknown:
            rec.status = 400
            return _error(400, "validation_error", f"{sorted(unknown)[0]} is not a property that exists.")
        page["properties"].update({k: _fill(v) for k, v in (body.get("properties") or {}).items()})
        if "in_trash" in body:
            page["in_trash"] = bool(body["in_trash"])
        page["last_edited_time"] = _now()
        return web.json_response(page)
