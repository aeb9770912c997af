"""The acknowledgement path alone: CPU from an envelope (Socket Mode) or a request (HTTP mode)
reaching the bot to its ack.

In one process: the real Slack adapter (Bolt's Socket Mode handler, our listeners), the real
engine and SQLite memory, and a websocket that is only a list (the envelopes go straight into the
Socket Mode client's queue, the acks are recorded as they are written). `n` mentions, one channel
each, are queued at once, as a burst arrives; the figure is the CPU the process spent until the
last ack was written, divided by `n`. The engine's own work for them waits for the acks owed
(`engine.intake`), so it is not counted; the model is the offline one (instant), posts go to the
local Slack stand-in.

HTTP mode (`--mode http`): the same adapter and engine behind the app `orchestra --slack-http`
serves (the operator API's, `adapters.api.app.create_app`) on uvicorn in this process; the
requests come from a client in another process (`benchmarks/slack_standins.py`'s lean client: a
new connection each), so only the bot's side is counted: this process's CPU from the first
request sent until the last 200 is in, divided by `n` (the engine's work for the first requests
may start before the last ones arrive, and is counted), and the acks' p50/p99 as the client saw
them.

    python benchmarks/bench_ack.py              # 200 envelopes, 5 rounds
    python benchmarks/bench_ack.py --n 1000 --rounds 3
    python benchmarks/bench_ack.py --mode http  # 200 signed requests, 5 rounds
    python benchmarks/bench_ack.py --profile ack.html   # pyinstrument (installed separately)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.slack import SlackAdapter  # noqa: E402
from adapters.slack.pacing import ChannelPacer  # noqa: E402
from bot.heap import settle_heap, tune_collector  # noqa: E402
from bot.settings import Settings  # noqa: E402
from engine.engine import Engine, EngineConfig  # noqa: E402
from engine.memory.store import SQLiteMemory  # noqa: E402
from engine.personas import PersonaRegistry  # noqa: E402
from engine.providers import OfflineProvider  # noqa: E402
from tests.servers.slack_api import SlackApiServer, event_envelope, mention_event, socket_envelope  # noqa: E402


class ListSocket:
    """Stands in for the websocket: `send_str` records the ack and when it was written."""

    closed = False

    def __init__(self) -> None:
        self.acks: dict[str, float] = {}
        self.all_in = asyncio.Event()
        self.expected = 0

    async def close(self) -> None:
        self.closed = True

    async def send_str(self, message: str) -> None:
        self.acks[json.loads(message)["envelope_id"]] = time.perf_counter()
        if len(self.acks) >= self.expected:
            self.all_in.set()


async def one_round(adapter: SlackAdapter, n: int, round_no: int) -> tuple[float, float]:
    handler = adapter.socket_handler
    assert handler is not None
    socket = ListSocket()
    socket.expected = n
    handler.client.current_session = socket  # type: ignore[assignment]
    raws = [
        json.dumps(socket_envelope("events_api", event_envelope(mention_event("sophia, why did sign-ups drop?", channel=f"C{round_no}{i:05d}"))))
        for i in range(n)
    ]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for raw in raws:
        await handler.client.enqueue_message(raw)
    await asyncio.wait_for(socket.all_in.wait(), 60)
    cpu, wall = time.process_time() - cpu0, max(socket.acks.values()) - wall0
    return cpu / n * 1e6, wall * 1000


SECRET = "bench-ack-signing-secret"


async def http_client(port: int) -> None:
    """`--client PORT`: for each line N on stdin, N signed mentions at once, each on a new connection;
    prints one JSON line: the acks' latencies (s) and the monotonic time the last 200 came in."""
    from benchmarks.slack_standins import Standins

    standins = Standins.__new__(Standins)  # only its HTTP client: no servers
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    round_no = 0
    while line := await reader.readline():
        round_no += 1
        channels = [f"C{round_no}{i:05d}" for i in range(int(line))]
        acks = await standins._http_burst(channels, [f"http://127.0.0.1:{port}/slack/events"], SECRET)
        print(json.dumps({"acks": [done - sent for sent, done in acks.values()],
                          "last": max((done for _, done in acks.values()), default=0.0)}), flush=True)


async def http_round(client: asyncio.subprocess.Process, n: int) -> tuple[float, float, float, float]:
    assert client.stdin is not None and client.stdout is not None
    cpu0, wall0 = time.process_time(), time.monotonic()
    client.stdin.write(f"{n}\n".encode())
    await client.stdin.drain()
    result = json.loads(await asyncio.wait_for(client.stdout.readline(), 120))
    cpu = time.process_time() - cpu0
    acks = sorted(result["acks"])
    if len(acks) < n:
        print(f"  !! {n - len(acks)} requests got no 200")
    from benchmarks.burst import percentile

    return cpu / n * 1e6, (result["last"] - wall0) * 1000, percentile(acks, 50) * 1000, percentile(acks, 99) * 1000


async def main_http(args: argparse.Namespace) -> int:
    from adapters.api.access import ApiTokens
    from adapters.api.app import create_app
    from adapters.api.server import HttpServer
    from bot.bootstrap import bootstrap
    from bot.settings import load_settings

    api = await SlackApiServer().start()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        app = await bootstrap(load_settings(db=Path(tmp) / "orchestra.db"), provider=OfflineProvider())
        settings = Settings(_env_file=None, db=Path(tmp) / "orchestra.db", slack_bot_token="xoxb-bench",
                            slack_signing_secret=SECRET, slack_api_url=api.api_url)
        adapter = SlackAdapter(settings, app.engine, pacer=ChannelPacer(rate=1000, burst=1000))
        app.engine.register_outbox("slack", adapter.outbox)
        await adapter.verify(socket_mode=False)
        server = HttpServer(create_app(app, tokens=ApiTokens(), slack=adapter), host="127.0.0.1", port=0)
        port = await server.start()
        await app.engine.start()
        adapter.served_elsewhere()
        settle_heap()
        client = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", str(port), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        try:
            for _ in range(args.rounds):
                await app.engine.wait_idle()
                await asyncio.sleep(0.3)
                results.append(await http_round(client, args.n))
            await app.engine.wait_idle()
        finally:
            client.stdin.close()  # type: ignore[union-attr]
            await client.wait()
            await server.stop()
            await adapter.stop()
            await app.aclose()
            await api.stop()
    print(f"HTTP mode ack path, {args.n} requests at once (new connection each), {args.rounds} rounds (the first is cold)")
    for i, (cpu, wall, p50, p99) in enumerate(results):
        print(f"  round {i + 1}: {cpu:7.0f} µs CPU per request, last 200 after {wall:6.1f} ms; ack p50 {p50:6.1f} ms, p99 {p99:6.1f} ms")
    warm = [cpu for cpu, *_ in results[1:]] or [results[0][0]]
    print(f"  warm median: {statistics.median(warm):.0f} µs CPU per request")
    return 0


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["socket", "http"], default="socket")
    parser.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)  # HTTP mode's sender
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", metavar="HTML", help="profile the rounds with pyinstrument into this file")
    args = parser.parse_args()
    if args.client:
        await http_client(args.client)
        return 0
    tune_collector()  # the collector as the bot sets it (bot/heap.py); its heap is frozen below
    if args.mode == "http":
        return await main_http(args)
    api = await SlackApiServer().start()
    with tempfile.TemporaryDirectory() as tmp:
        memory = await SQLiteMemory.open(Path(tmp) / "orchestra.db")
        engine = Engine(memory, OfflineProvider(), PersonaRegistry.defaults(), EngineConfig())
        settings = Settings(_env_file=None, db=Path(tmp) / "orchestra.db", slack_bot_token="xoxb-bench",
                            slack_app_token="xapp-bench", slack_api_url=api.api_url)
        adapter = SlackAdapter(settings, engine, pacer=ChannelPacer(rate=1000, burst=1000))
        engine.register_outbox("slack", adapter.outbox)
        await engine.start()
        await adapter.start_socket_mode()
        await api.wait_connected()
        settle_heap()
        profiler: Any = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002, async_mode="disabled")
        results = []
        try:
            for r in range(args.rounds):
                await engine.wait_idle()
                await asyncio.sleep(0.2)
                if profiler is not None and r > 0:  # the warm rounds
                    profiler.start()
                results.append(await one_round(adapter, args.n, r))
                if profiler is not None and r > 0:
                    profiler.stop()
                await engine.wait_idle()
        finally:
            await adapter.stop()
            await engine.stop()
            await memory.close()
            await api.stop()
    print(f"Socket Mode ack path, {args.n} envelopes at once, {args.rounds} rounds (the first is cold)")
    for i, (cpu, wall) in enumerate(results):
        print(f"  round {i + 1}: {cpu:7.0f} µs CPU per envelope, last ack after {wall:6.1f} ms")
    warm = [cpu for cpu, _ in results[1:]] or [results[0][0]]
    print(f"  warm median: {statistics.median(warm):.0f} µs CPU per envelope")
    if profiler is not None:
        Path(args.profile).write_text(profiler.output_html())
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
