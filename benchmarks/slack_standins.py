"""The stand-ins `bench_slack.py` bursts against, in their own process (so their CPU is not the
bot's): the local Slack (Web API + Socket Mode, `tests.servers.slack_api`), the local OpenAI
server answering every chat completion after `--model-delay` seconds, and a control endpoint.

    python benchmarks/slack_standins.py --model-delay 1.0
    → prints one JSON line {"slack_api": ..., "openai": ..., "control": ...} once listening

`POST /bench/burst` {"mode": "socket"|"http", "n": 200, "run": "1", "target": URL, "secret": S}
(or "targets": [URL, ...], the mentions sent round-robin across them, for several replicas;
"client": "aiohttp" for the old HTTP client instead of the lean one, see `_http_burst`)
sends `n` mentions at once (one channel each: Socket Mode envelopes over the connected
websocket, or signed Events API requests to `target`), waits for every acknowledgement and every
answer, and returns the timings, all on this machine's monotonic clock (shared by processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from tests.servers import Scripted  # noqa: E402
from tests.servers.openai_server import OpenAIServer, completion  # noqa: E402
from tests.servers.slack_api import (  # noqa: E402
    SlackApiServer,
    event_envelope,
    mention_event,
    signed_headers,
    socket_envelope,
)

ANSWER = "Sign-ups usually dip on Mondays because campaigns end on Fridays; check the funnel by source."
QUESTION = "sophia, why did sign-ups drop on Monday?"
#: The Web API calls that show people something: the gaps between them are what a burst feels like.
VISIBLE = ("chat.postMessage", "chat.update")


class Standins:
    def __init__(self, model_delay: float):
        self.slack = SlackApiServer()
        self.model = OpenAIServer()
        self.model.always(lambda body: Scripted(body=completion(ANSWER, model=str((body or {}).get("model", "bench"))), delay=model_delay))
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> dict[str, str]:
        await self.slack.start()
        await self.model.start()
        app = web.Application()
        app.add_routes([web.post("/bench/burst", self.burst), web.get("/bench/health", self.health)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        # many concurrent requests to the bot in HTTP mode, kept alive like Slack's
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return {"slack_api": self.slack.api_url, "openai": self.model.base_url, "control": f"http://127.0.0.1:{port}"}

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response({"socket_connected": bool(self.slack._sockets)})

    async def burst(self, request: web.Request) -> web.Response:
        spec = await request.json()
        n, run, mode = int(spec["n"]), str(spec["run"]), spec["mode"]
        channels = [f"C{run}{i:05d}" for i in range(n)]
        wanted = set(channels)
        first_call = len(self.slack.calls)
        self.model.requests.clear()
        started = time.monotonic()
        if mode == "socket":
            if not self.slack._sockets:
                await self.slack.wait_connected(10)
            acks = await self._socket_burst(channels)
        else:
            targets = spec.get("targets") or [spec["target"]]  # several: round-robin, as a load balancer would
            acks = await self._http_burst(channels, targets, spec["secret"], spec.get("client", "lean"))
        ack_latencies = [done - sent for sent, done in acks.values()]
        sent_at = {c: acks[c][0] for c in channels}
        answered: dict[str, float] = {}
        deadline = started + 60 + n * 0.05
        while len(answered) < n and time.monotonic() < deadline:
            for call in self.slack.calls[first_call:]:
                if call.method == "chat.update" and call.status == 200 and call.get("channel") in wanted:
                    answered.setdefault(call["channel"], call.at)
            if len(answered) < n:
                self.slack._changed.clear()
                try:
                    await asyncio.wait_for(self.slack._changed.wait(), 0.05)
                except asyncio.TimeoutError:
                    pass
        calls = [c for c in self.slack.calls[first_call:] if c.get("channel") in wanted]
        visible = sorted(c.at for c in calls if c.method in VISIBLE and c.status == 200)
        gaps = [b - a for a, b in zip(visible, visible[1:])]
        per_method: dict[str, int] = {}
        for c in calls:
            per_method[c.method] = per_method.get(c.method, 0) + 1
        other: dict[str, int] = {}  # calls for no channel of this burst (auth.test, say)
        for c in self.slack.calls[first_call:]:
            if c.get("channel") not in wanted:
                other[c.method] = other.get(c.method, 0) + 1
        return web.json_response({
            "n": n,
            "acks": ack_latencies,
            "answers": [answered[c] - sent_at[c] for c in channels if c in answered],
            "unanswered": n - len(answered),
            "started": started,
            "last_answer": max(answered.values(), default=started),
            "longest_gap": max(gaps, default=0.0),
            "slack_calls": per_method,
            "other_slack_calls": other,
            "model_calls": len(self.model.requests),
        })

    async def _socket_burst(self, channels: list[str]) -> dict[str, tuple[float, float]]:
        ids: dict[str, str] = {}
        for channel in channels:
            envelope = socket_envelope("events_api", event_envelope(mention_event(QUESTION, channel=channel)))
            ids[channel] = await self.slack.send_envelope(envelope)
        deadline = time.monotonic() + 60
        while not all(i in self.slack.acks for i in ids.values()) and time.monotonic() < deadline:
            self.slack._changed.clear()
            try:
                await asyncio.wait_for(self.slack._changed.wait(), 0.05)
            except asyncio.TimeoutError:
                pass
        return {c: (self.slack.sent_envelopes[i], self.slack.acks[i].at) for c, i in ids.items() if i in self.slack.acks}

    async def _http_burst(self, channels: list[str], targets: list[str], secret: str,
                          client: str = "lean") -> dict[str, tuple[float, float]]:
        """Each mention a signed POST on a new connection (Slack may well open one per request):
        `sent` is taken before connecting, `done` when the status line and the body are in.

        "lean" (the default) writes and reads the HTTP/1.1 bytes on a bare socket: building and
        parsing requests with aiohttp's client cost this process ~0.5 ms of CPU each, so at 200
        at once the last request left ~100 ms after its `sent`, a delay that is this stand-in's,
        not the bot's (a floor of ~150 ms p99 against an app that only answers 200). "aiohttp"
        keeps the old client (its pool keeps connections alive for a warm burst) to compare."""
        bodies = {c: json.dumps(event_envelope(mention_event(QUESTION, channel=c))) for c in channels}
        out: dict[str, tuple[float, float]] = {}

        async def send_aiohttp(channel: str, target: str) -> None:
            assert self._http is not None
            body = bodies[channel]
            headers = signed_headers(secret, body, content_type="application/json")
            sent = time.monotonic()
            async with self._http.post(target, data=body, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    out[channel] = (sent, time.monotonic())

        def request_bytes(channel: str, target: str) -> bytes:
            url = urlsplit(target)
            body = bodies[channel].encode()
            headers = signed_headers(secret, bodies[channel], content_type="application/json")
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            return (f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {len(body)}\r\n"
                    f"Connection: close\r\n{head}\r\n").encode() + body

        async def send_lean(channel: str, target: str, request: bytes) -> None:
            url = urlsplit(target)
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setblocking(False)
                sent = time.monotonic()
                try:
                    await loop.sock_connect(sock, (url.hostname, url.port))
                    await loop.sock_sendall(sock, request)
                    answer = b""
                    while b"\r\n\r\n" not in answer or len(answer) < _answer_length(answer):
                        chunk = await loop.sock_recv(sock, 65536)
                        if not chunk:
                            break
                        answer += chunk
                    done = time.monotonic()
                except OSError:
                    return  # refused or reset: not acknowledged
                if answer.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ")):
                    out[channel] = (sent, done)

        pairs = [(c, targets[i % len(targets)]) for i, c in enumerate(channels)]
        if client == "aiohttp":
            await asyncio.gather(*(send_aiohttp(c, t) for c, t in pairs))
        else:
            requests = [request_bytes(c, t) for c, t in pairs]  # signed before the clock starts
            await asyncio.gather(*(send_lean(c, t, r) for (c, t), r in zip(pairs, requests)))
        return out


def _answer_length(answer: bytes) -> int:
    """How long an HTTP answer is once its head is in: head + Content-Length (no length: the head)."""
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(head) + 4 + int(value)
    return len(head) + 4


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-delay", type=float, default=1.0)
    args = parser.parse_args()
    standins = Standins(args.model_delay)
    print(json.dumps(await standins.start()), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
