"""The local Discord's gateway: one websocket session at a time, as discord.py uses it.

HELLO (heartbeat_interval), IDENTIFY -> READY (guilds unavailable) then one GUILD_CREATE,
HEARTBEAT -> HEARTBEAT_ACK, RESUME -> the missed events in order then RESUMED, uncompressed
JSON text frames with sequence numbers. Refuses a bad token (close 4004) and a privileged intent
the portal has not switched on (close 4014).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from tests.servers import discord_payloads as wire

if TYPE_CHECKING:
    from tests.servers.discord_api import DiscordServer

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 7, 9, 10, 11


@dataclass
class Session:
    session_id: str
    intents: int
    seq: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)  # every dispatched frame, in order


class Gateway:
    def __init__(self, server: DiscordServer, *, heartbeat_interval: int, allowed_intents: int):
        self.server = server
        self.heartbeat_interval = heartbeat_interval
        self.allowed_intents = allowed_intents
        self.session: Session | None = None
        self.ws: web.WebSocketResponse | None = None  # the live connection, if any
        self.identifies: list[dict[str, Any]] = []  # every IDENTIFY's d (token included)
        self.resumes: list[dict[str, Any]] = []  # every RESUME's d
        self.heartbeats = 0
        self.connections = 0
        self.close_codes: list[int] = []  # codes this server closed connections with
        self._sockets: set[web.WebSocketResponse] = set()
        self._lock = asyncio.Lock()  # frames go out in sequence order

    @property
    def ready(self) -> bool:
        """A session was identified (events can be dispatched, live or queued for a resume)."""
        return self.session is not None

    @property
    def intents(self) -> int | None:
        """The intents of the last IDENTIFY."""
        return self.identifies[-1].get("intents") if self.identifies else None

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        self._sockets.add(ws)
        await ws.send_str(json.dumps({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval}, "s": None, "t": None}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                await self._on_frame(ws, frame["op"], frame.get("d"))
        finally:
            self._sockets.discard(ws)
            if self.ws is ws:
                self.ws = None
            self.server.touch()
        return ws

    async def _on_frame(self, ws: web.WebSocketResponse, op: int, d: Any) -> None:
        if op == HEARTBEAT:
            self.heartbeats += 1
            await ws.send_str(json.dumps({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None}))
        elif op == IDENTIFY:
            await self._identify(ws, d)
        elif op == RESUME:
            await self._resume(ws, d)
        self.server.touch()

    async def _refuse(self, ws: web.WebSocketResponse, code: int, message: str) -> None:
        self.close_codes.append(code)
        await ws.close(code=code, message=message.encode())

    async def _identify(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> None:
        self.identifies.append(d)
        if d.get("token") != self.server.token:
            return await self._refuse(ws, 4004, "Authentication failed.")
        intents = int(d.get("intents", 0))
        if intents & wire.PRIVILEGED_INTENTS & ~self.allowed_intents:
            return await self._refuse(ws, 4014, "Disallowed intent(s).")
        self.session = Session(secrets.token_hex(16), intents)
        self.ws = ws
        server = self.server
        await self.dispatch("READY", {
            "v": 10,
            "user": {**server.bot, "verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(server.guild_id), "unavailable": True}],
            "session_id": self.session.session_id,
            "resume_gateway_url": server.gateway_url,
            "application": {"id": str(server.application_id), "flags": 0},
            "private_channels": [], "relationships": [], "presences": [], "guild_join_requests": [],
            "geo_ordered_rtc_regions": [], "session_type": "normal", "auth_session_id_hash": "local",
            "_trace": ["local-gateway"],
            **({"shard": d["shard"]} if "shard" in d else {}),  # Discord echoes the shard identified with
        })
        await self.dispatch("GUILD_CREATE", server.guild_payload())

    async def _resume(self, ws: web.WebSocketResponse, d: dict[str, Any]) -> None:
        self.resumes.append(d)
        if d.get("token") != self.server.token:
            return await self._refuse(ws, 4004, "Authentication failed.")
        session = self.session
        if session is None or d.get("session_id") != session.session_id:
            await ws.send_str(json.dumps({"op": INVALID_SESSION, "d": False, "s": None, "t": None}))
            return
        async with self._lock:
            self.ws = ws
            last = int(d.get("seq") or 0)
            for frame in session.log:
                if frame["s"] > last:
                    await ws.send_str(json.dumps(frame))
            session.seq += 1
            resumed = {"op": DISPATCH, "t": "RESUMED", "s": session.seq, "d": {"_trace": ["local-gateway"]}}
            session.log.append(resumed)
            await ws.send_str(json.dumps(resumed))

    def _as_received(self, event: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """What a session with these intents gets of an event, as Discord filters it: guild
        messages need GUILD_MESSAGES, DMs DIRECT_MESSAGES; without MESSAGE_CONTENT a guild
        message that does not mention the bot arrives with empty content, embeds, attachments
        and components (the bot's own messages keep theirs). None: not sent at all."""
        assert self.session is not None
        intents = self.session.intents
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
            return data
        in_guild = "guild_id" in data
        if not intents & (wire.GUILD_MESSAGES if in_guild else wire.DIRECT_MESSAGES):
            return None
        bot_id = str(self.server.bot_id)
        if (in_guild and not intents & wire.MESSAGE_CONTENT and data["author"]["id"] != bot_id
                and bot_id not in [u["id"] for u in data.get("mentions", [])]):
            return {**data, "content": "", "embeds": [], "attachments": [], "components": []}
        return data

    async def dispatch(self, event: str, data: dict[str, Any]) -> int | None:
        """Send one DISPATCH frame (or keep it for the next RESUME when disconnected); returns its
        seq (None when the session's intents do not receive it)."""
        if self.session is None:
            raise AssertionError(f"no gateway session to dispatch {event} on (the client never identified)")
        received = self._as_received(event, data)
        if received is None:
            return None
        async with self._lock:
            self.session.seq += 1
            frame = {"op": DISPATCH, "t": event, "s": self.session.seq, "d": received}
            self.session.log.append(frame)
            if self.ws is not None and not self.ws.closed:
                try:
                    await self.ws.send_str(json.dumps(frame))
                except (ConnectionError, RuntimeError):
                    pass  # the client is gone; the frame waits in the log for a RESUME
        self.server.touch()
        return frame["s"]

    def dispatch_nowait(self, event: str, data: dict[str, Any]) -> None:
        """Dispatch from synchronous code (REST handlers): sent in order, soon after."""
        if self.session is not None:
            asyncio.get_running_loop().create_task(self.dispatch(event, data))

    async def redeliver(self, seq: int) -> int | None:
        """Send the already-dispatched event `seq` again as a new event (a duplicate delivery)."""
        assert self.session is not None
        frame = next(f for f in self.session.log if f["s"] == seq)
        return await self.dispatch(frame["t"], frame["d"])

    def last_seq(self, event: str | None = None) -> int:
        """The sequence number of the last dispatched event (of this name)."""
        assert self.session is not None
        return max((f["s"] for f in self.session.log if event is None or f["t"] == event), default=0)

    async def drop(self, code: int = 4000) -> None:
        """Close the live connection with a resumable code: discord.py reconnects and RESUMEs.
        Events dispatched until then wait in the session log."""
        ws, self.ws = self.ws, None
        if ws is not None:
            self.close_codes.append(code)
            await ws.close(code=code, message=b"dropped by the test")

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py closes and resumes."""
        if self.ws is not None:
            await self.ws.send_str(json.dumps({"op": RECONNECT, "d": None, "s": None, "t": None}))

    async def wait_connected(self, timeout: float = 5.0) -> None:
        """Wait for a live, identified (or resumed) connection."""
        await self.server.wait_for(lambda: self.ws is not None and not self.ws.closed and self.session, timeout)

    async def close_all(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server stopping")
