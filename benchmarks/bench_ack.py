"""The Socket Mode acknowledgement path alone: CPU from an envelope reaching the bot to its ack.

In one process: the real Slack adapter (Bolt's Socket Mode handler, our listeners), the real
engine and SQLite memory, and a websocket that is only a list (the envelopes go straight into the
Socket Mode client's queue, the acks are recorded as they are written). `n` mentions, one channel
each, are queued at once, as a burst arrives; the figure is the CPU the process spent until the
last ack was written, divided by `n`. The engine's own work for them waits for the acks owed
(`engine.intake`), so it is not counted; the model is the offline one (instant), posts go to the
local Slack stand-in.

    python benchmarks/bench_ack.py              # 200 envelopes, 5 rounds
    python benchmarks/bench_ack.py --n 1000 --rounds 3
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


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", metavar="HTML", help="profile the rounds with pyinstrument into this file")
    args = parser.parse_args()
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
