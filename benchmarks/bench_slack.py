"""Slack under a burst: 200 mentions at once, each in its own channel, a model that takes 1 s.

Prints p50/p99/max of
  (a) acknowledgement: request sent → HTTP 200 (HTTP mode), envelope sent → ack received
      (Socket Mode, over a local websocket stand-in for Slack);
  (b) answer: mention sent → the persona's answer in the thread (the `chat.update` that replaces
      her "thinking…" placeholder) at the local Slack Web API;
and checks the targets: every answer within 2 s of its mention (p99), every Socket Mode
envelope acknowledged within 100 ms (p99).

Everything runs in this one process and event loop (the stand-in Slack, the adapter, the real
engine with a SQLite file), so the figures include the stand-in's own work: they are an upper
bound of what the adapter adds.

    python benchmarks/bench_slack.py [--mentions 200] [--model-delay 1.0] [--api-latency 0.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from adapters.slack import SlackAdapter  # noqa: E402
from benchmarks.burst import SlowModel, percentile  # noqa: E402
from bot.settings import Settings  # noqa: E402
from engine.engine import Engine, EngineConfig  # noqa: E402
from engine.memory.store import SQLiteMemory  # noqa: E402
from engine.personas import PersonaRegistry  # noqa: E402
from tests.servers.slack_api import (  # noqa: E402
    SlackApiServer,
    event_envelope,
    mention_event,
    message_event,
    signed_headers,
    socket_envelope,
)

SECRET = "bench-signing-secret"


def line(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"  {label:<34} n={len(ms):<4} p50={percentile(ms, 50):8.1f} ms  p99={percentile(ms, 99):8.1f} ms"
        f"  max={max(ms):8.1f} ms  mean={statistics.fmean(ms):8.1f} ms"
    )


async def build(api: SlackApiServer, db: Path, delay: float) -> tuple[SlackAdapter, Engine, SQLiteMemory]:
    settings = Settings(
        _env_file=None,
        db=db,
        slack_bot_token="xoxb-bench",
        slack_app_token="xapp-bench",
        slack_signing_secret=SECRET,
        slack_api_url=api.api_url,
    )
    memory = await SQLiteMemory.open(db)
    engine = Engine(memory, SlowModel(delay), PersonaRegistry.defaults(), EngineConfig())
    adapter = SlackAdapter(settings, engine)
    engine.register_outbox("slack", adapter.outbox)
    await engine.start()
    return adapter, engine, memory


def answer_times(api: SlackApiServer, sent: dict[str, float]) -> list[float]:
    """Per channel: the first chat.update (her answer replacing the placeholder)."""
    answered: dict[str, float] = {}
    for call in api.calls:
        if call.method == "chat.update" and call.status == 200:
            answered.setdefault(call["channel"], call.at)
    missing = set(sent) - set(answered)
    if missing:
        print(f"  !! {len(missing)} mention(s) not answered", file=sys.stderr)
    return [answered[c] - sent[c] for c in sent if c in answered]


async def wait_answers(api: SlackApiServer, channels: int, timeout: float) -> None:
    await api.wait_for(
        lambda: len({c["channel"] for c in api.of("chat.update")}) >= channels, timeout=timeout
    )


async def run_http(n: int, delay: float, api_latency: float, tmp: Path) -> tuple[list[float], list[float]]:
    api = await SlackApiServer(latency=api_latency).start()
    adapter, engine, memory = await build(api, tmp / "http.db", delay)
    # server side: from the request reaching Bolt to Bolt's acknowledgement being ready
    dispatch = adapter.app.async_dispatch
    server_acks: list[float] = []

    async def timed_dispatch(request):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        response = await dispatch(request)
        server_acks.append(time.monotonic() - started)
        return response

    adapter.app.async_dispatch = timed_dispatch  # type: ignore[method-assign]
    port = await adapter.start_http(port=0, host="127.0.0.1")
    url = f"http://127.0.0.1:{port}/slack/events"
    acks: list[float] = []
    sent: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

            async def send(event: dict, record: bool) -> None:
                body = json.dumps(event_envelope(event))
                headers = signed_headers(SECRET, body, content_type="application/json")
                started = time.monotonic()
                if record:
                    sent[event["channel"]] = started
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status
                if record:
                    acks.append(time.monotonic() - started)

            await send(message_event("warm-up, ignored", channel="CWARM"), record=False)  # Bolt's auth.test
            await asyncio.gather(*(send(mention_event("sophia, why did sign-ups drop on Monday?", channel=f"C{i:04d}"), True) for i in range(n)))
            await wait_answers(api, n, timeout=30 + delay * 2)
            await engine.wait_idle()
        print("HTTP mode:")
        print(line("ack inside the app (Bolt → 200)", server_acks[1:]))
        return acks, answer_times(api, sent)
    finally:
        await adapter.stop()
        await engine.stop()
        await memory.close()
        await api.stop()


async def run_socket(n: int, delay: float, api_latency: float, tmp: Path) -> tuple[list[float], list[float]]:
    api = await SlackApiServer(latency=api_latency).start()
    adapter, engine, memory = await build(api, tmp / "socket.db", delay)
    await adapter.start_socket_mode()
    await api.wait_connected()
    sent: dict[str, float] = {}
    ids: list[str] = []
    try:
        warm = await api.send_envelope(socket_envelope("events_api", event_envelope(message_event("warm-up", channel="CWARM"))))
        await api.wait_ack(warm)
        for i in range(n):
            envelope = socket_envelope("events_api", event_envelope(mention_event("sophia, why did sign-ups drop on Monday?", channel=f"C{i:04d}")))
            ids.append(await api.send_envelope(envelope))
            sent[f"C{i:04d}"] = api.sent_envelopes[envelope["envelope_id"]]
        await api.wait_for(lambda: all(i in api.acks for i in ids), timeout=30)
        acks = [api.acks[i].at - api.sent_envelopes[i] for i in ids]
        await wait_answers(api, n, timeout=30 + delay * 2)
        await engine.wait_idle()
        return acks, answer_times(api, sent)
    finally:
        await adapter.stop()
        await engine.stop()
        await memory.close()
        await api.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentions", type=int, default=200)
    parser.add_argument("--model-delay", type=float, default=1.0)
    parser.add_argument("--api-latency", type=float, default=0.0, help="seconds the stand-in Slack API takes per call")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    print(f"{args.mentions} mentions at once, one per channel; model takes {args.model_delay:.1f} s; "
          f"Slack API stand-in latency {args.api_latency * 1000:.0f} ms")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for mode, run in (("HTTP mode", run_http), ("Socket Mode", run_socket)):
            acks, answers = await run(args.mentions, args.model_delay, args.api_latency, Path(tmp))
            if mode == "Socket Mode":
                print(f"{mode}:")
            label = "ack round trip (client → 200)" if mode == "HTTP mode" else "acknowledged (envelope → ack)"
            print(line(label, acks))
            print(line("answered (mention → persona post)", answers))
            answer_ok = len(answers) == args.mentions and percentile(answers, 99) <= args.model_delay + 1.0
            print(f"  target answer p99 ≤ {args.model_delay + 1.0:.1f} s: {'met' if answer_ok else 'MISSED'}")
            if mode == "Socket Mode":
                ack_ok = percentile(acks, 99) <= 0.100
                print(f"  target ack p99 ≤ 100 ms: {'met' if ack_ok else 'MISSED'}")
                ok = ok and ack_ok
            ok = ok and answer_ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
