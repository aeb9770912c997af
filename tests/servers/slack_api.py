"""A local stand-in for Slack: the Web API wire format, response URLs and Socket Mode.

`SlackApiServer` answers `POST /api/<method>` the way slack.com does (form or JSON in,
`{"ok": true, ...}` out), records every call, can answer 429 with `Retry-After` or an error
for the next N calls of a method, receives `respond()` posts on `/respond/<id>`, and serves a
Socket Mode websocket (`apps.connections.open` hands out its ws:// URL) that sends envelopes
and records the acknowledgements.

The helpers at the bottom build what Slack sends to an app: signed event, command and
interaction requests (`X-Slack-Signature` v0 HMAC) and Socket Mode envelopes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

from aiohttp import WSMsgType, web

TEAM = "T0TEAM"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0APP"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)  # what the server answered

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    @property
    def blocks(self) -> list[dict[str, Any]]:
        raw = self.params.get("blocks")
        if isinstance(raw, str):
            return json.loads(raw)
        return raw or []

    def block_texts(self) -> list[str]:
        """Every text in the blocks (sections, headers, contexts), in order."""
        texts = []
        for b in self.blocks:
            if isinstance(b.get("text"), dict):
                texts.append(b["text"]["text"])
            for e in b.get("elements", []):
                if isinstance(e, dict) and "text" in e:
                    texts.append(e["text"] if isinstance(e["text"], str) else e["text"].get("text", ""))
        return texts


@dataclass
class Ack:
    envelope_id: str
    payload: dict[str, Any] | None
    at: float


class SlackApiServer:
    """`bot_token` / `app_token`, when given, are the only tokens it accepts, as Slack does:
    a call with another answers `invalid_auth` (`apps.connections.open` takes the app token,
    every other method the bot token)."""

    def __init__(self, *, latency: float = 0.0, bot_token: str | None = None, app_token: str | None = None):
        self.latency = latency  # seconds added to every Web API answer
        self.bot_token = bot_token
        self.app_token = app_token
        self.calls: list[Call] = []
        self.responses: list[dict[str, Any]] = []  # bodies posted to response URLs
        self.acks: dict[str, Ack] = {}
        self.sent_envelopes: dict[str, float] = {}
        self._rate_limited: dict[str, list[int]] = {}  # method -> [remaining, retry_after]
        self._failures: dict[str, list[Any]] = {}  # method -> [remaining, error]
        self._ts = itertools.count(1)
        #: Every message as it now reads, by channel and ts (posts, then updates): what
        #: conversations.replies / conversations.history answer, metadata included when asked.
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._connected = asyncio.Event()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str | None = None) -> str:
        return f"{self.url}/respond/{name or uuid.uuid4().hex[:8]}"

    async def start(self) -> "SlackApiServer":
        app = web.Application()
        app.add_routes(
            [
                web.post("/api/{method}", self._api),
                web.get("/api/{method}", self._api),  # slack_sdk reads conversations.* with GET
                web.post("/respond/{id}", self._respond),
                web.get("/link", self._socket),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- behaviour switches -------------------------------------------------------------------

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 0) -> None:
        """The next `times` calls of `method` answer 429 with `Retry-After`."""
        self._rate_limited[method] = [times, retry_after]

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """The next `times` calls of `method` answer `{"ok": false, "error": error}`."""
        self._failures[method] = [times, error]

    # --- queries ------------------------------------------------------------------------------

    def of(self, method: str, ok_only: bool = True) -> list[Call]:
        return [c for c in self.calls if c.method == method and (c.status == 200 or not ok_only)]

    def posts(self, channel: str | None = None) -> list[Call]:
        return [c for c in self.of("chat.postMessage") if channel is None or c["channel"] == channel]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked on every recorded call)."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting; calls so far: {[c.method for c in self.calls]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
            except asyncio.TimeoutError:
                pass

    def _touch(self) -> None:
        self._changed.set()

    # --- Web API ------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.method == "GET":
            params = dict(request.query)
        elif request.content_type == "application/json":
            params = await request.json()
        else:
            params = dict(parse_qsl(await request.text(), keep_blank_values=True))
        call = Call(method=method, params=params, headers=dict(request.headers))
        self.calls.append(call)
        if self.latency:
            await asyncio.sleep(self.latency)
        limited = self._rate_limited.get(method)
        if limited and limited[0] > 0:
            limited[0] -= 1
            call.status = 429
            self._touch()
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(limited[1])}
            )
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        given = request.headers.get("Authorization", "").removeprefix("Bearer ") or params.get("token")
        if expected is not None and given != expected:
            call.status = 400
            self._touch()
            return web.json_response({"ok": False, "error": "not_authed" if not given else "invalid_auth"})
        failing = self._failures.get(method)
        if failing and failing[0] > 0:
            failing[0] -= 1
            call.status = 400  # recorded as failed; Slack itself answers 200 with ok: false
            self._touch()
            return web.json_response({"ok": False, "error": failing[1]})
        call.response = self._answer(method, params)
        self._touch()
        return web.json_response(call.response)

    def _next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.000100"

    def _answer(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://orchestra-test.slack.com/",
                "team": "Orchestra Test",
                "user": "orchestra",
                "team_id": TEAM,
                "user_id": BOT_USER,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        if method == "chat.postMessage":
            ts = self._next_ts()
            message = {"type": "message", "text": p.get("text", ""), "ts": ts, "bot_id": BOT_ID}
            if p.get("thread_ts"):
                message["thread_ts"] = p["thread_ts"]
            stored = {**message, "username": p.get("username", "")}
            if p.get("metadata"):
                stored["metadata"] = _json_field(p["metadata"])
            self.messages[(str(p.get("channel")), ts)] = stored
            return {"ok": True, "channel": p.get("channel"), "ts": ts, "message": message}
        if method == "chat.update":
            stored = self.messages.get((str(p.get("channel")), str(p.get("ts"))))
            if stored is not None:
                stored["text"] = p.get("text", "")
                if p.get("metadata"):
                    stored["metadata"] = _json_field(p["metadata"])
            return {"ok": True, "channel": p.get("channel"), "ts": p.get("ts"), "text": p.get("text", "")}
        if method in ("conversations.replies", "conversations.history"):
            return self._conversation(method, p)
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "conversations.info":
            return {"ok": True, "channel": {"id": p.get("channel"), "is_member": True, "name": "general"}}
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link?ticket={uuid.uuid4().hex}"}
        return {"ok": True}

    def _conversation(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        """A thread's messages (root first) or a channel's top-level ones (newest first), one page;
        metadata only with include_all_metadata, as Slack does."""
        channel = str(p.get("channel"))
        mine = [m for (c, _), m in self.messages.items() if c == channel]
        if method == "conversations.replies":
            ts = str(p.get("ts"))
            found = sorted((m for m in mine if m["ts"] == ts or m.get("thread_ts") == ts), key=lambda m: float(m["ts"]))
            if not found:
                return {"ok": False, "error": "thread_not_found"}
        else:
            found = sorted((m for m in mine if not m.get("thread_ts")), key=lambda m: float(m["ts"]), reverse=True)
        with_meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        start = int(p.get("cursor") or 0)
        limit = int(p.get("limit") or 100)
        page = found[start:start + limit]
        messages = [m if with_meta else {k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(found)
        return {"ok": True, "messages": messages, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def final_messages(self) -> list[dict[str, Any]]:
        """Every message as people now see it, in the order it was first posted."""
        return sorted(self.messages.values(), key=lambda m: float(m["ts"]))

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        body["_id"] = request.match_info["id"]
        self.responses.append(body)
        self._touch()
        return web.Response(text="ok")

    # --- Socket Mode --------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "local", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        self._connected.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if "envelope_id" in data:
                        self.acks[data["envelope_id"]] = Ack(data["envelope_id"], data.get("payload"), time.monotonic())
                        self._touch()
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    async def wait_connected(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def send_envelope(self, envelope: dict[str, Any]) -> str:
        """Send one Socket Mode envelope to the connected app; returns its envelope id."""
        if not self._sockets:
            raise AssertionError("no Socket Mode connection")
        self.sent_envelopes[envelope["envelope_id"]] = time.monotonic()
        await self._sockets[-1].send_str(json.dumps(envelope))
        return envelope["envelope_id"]

    async def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        return await self.wait_for(lambda: self.acks.get(envelope_id), timeout)


def _json_field(value: Any) -> Any:
    """A JSON-valued parameter: an object in JSON bodies, a JSON string in form bodies."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --- what Slack sends to an app ---------------------------------------------------------------


def signature(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str, body: str, *, content_type: str, timestamp: int | None = None, retry_num: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(secret, ts, body),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


_ids = itertools.count(1)


def ts_now() -> str:
    return f"{time.time():.6f}"


def message_event(
    text: str,
    *,
    channel: str = "C0GENERAL",
    user: str = "U0ALICE",
    ts: str | None = None,
    thread_ts: str | None = None,
    type: str = "message",
    channel_type: str = "channel",
    **extra: Any,
) -> dict[str, Any]:
    ts = ts or ts_now()
    event: dict[str, Any] = {
        "type": type,
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type,
        "team": TEAM,
    }
    if type == "app_mention":
        event.pop("channel_type")
    if thread_ts:
        event["thread_ts"] = thread_ts
    event.update(extra)
    return event


def mention_event(text: str, **kw: Any) -> dict[str, Any]:
    """An app_mention as Slack sends it: the text starts with `<@BOT>`."""
    return message_event(f"<@{BOT_USER}> {text}".rstrip(), type="app_mention", **kw)


def event_envelope(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """The Events API body (`event_callback`)."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):08d}",
        "event_time": int(time.time()),
        "authorizations": [
            {"enterprise_id": None, "team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
    }


def command_payload(
    command: str, text: str = "", *, channel: str = "C0GENERAL", user: str = "U0ALICE", response_url: str = ""
) -> dict[str, str]:
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "team_domain": "orchestra-test",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"{next(_ids)}.{int(time.time())}.abcdef",
    }


BUTTON_LABELS = {"orchestra_challenge": "Challenge", "orchestra_plan": "Move to planning", "orchestra_close": "Close",
                 "orchestra_crew": "Hand to a crew"}


def turn_blocks(value: str = "inv-1") -> list[dict[str, Any]]:
    """The blocks of a persona's turn as Slack hands them back: a finding, then our buttons."""
    return [
        {"type": "section", "block_id": "Fq2", "text": {"type": "mrkdwn", "text": "a finding", "verbatim": False}},
        {
            "type": "actions",
            "block_id": "orchestra_actions",
            "elements": [
                {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": label, "emoji": True}, "value": value}
                for action_id, label in BUTTON_LABELS.items()
            ],
        },
    ]


def block_action_payload(
    action_id: str,
    value: str,
    *,
    channel: str = "C0GENERAL",
    user: str = "U0ALICE",
    message_ts: str = "1700000001.000100",
    thread_ts: str | None = None,
    response_url: str = "",
    text: str = "a finding",
    blocks: list[dict[str, Any]] | None = None,
    action_ts: str | None = None,
) -> dict[str, Any]:
    """A click on one of the buttons of our message `message_ts`; `blocks` are the message's
    blocks as Slack sends them back (by default `turn_blocks(value)`)."""
    message: dict[str, Any] = {
        "type": "message",
        "ts": message_ts,
        "bot_id": BOT_ID,
        "text": text,
        "blocks": turn_blocks(value) if blocks is None else blocks,
    }
    if thread_ts:
        message["thread_ts"] = thread_ts
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"{next(_ids)}.{int(time.time())}.fedcba",
        "team": {"id": TEAM, "domain": "orchestra-test"},
        "channel": {"id": channel, "name": "general"},
        "message": message,
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "orchestra_actions",
                "text": {"type": "plain_text", "text": BUTTON_LABELS.get(action_id, "Go"), "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": action_ts or f"{time.time():.6f}",
            }
        ],
    }


def form_body(fields: dict[str, str]) -> str:
    return urlencode(fields)


def interaction_body(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def socket_envelope(kind: str, payload: dict[str, Any], *, retry_attempt: int = 0) -> dict[str, Any]:
    """A Socket Mode envelope: kind is events_api, slash_commands or interactive."""
    return {
        "envelope_id": uuid.uuid4().hex,
        "payload": payload,
        "type": kind,
        "accepts_response_payload": kind != "events_api",
        "retry_attempt": retry_attempt,
        "retry_reason": "timeout" if retry_attempt else "",
    }
