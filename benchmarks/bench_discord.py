"""Discord under a burst: 200 mentions at once, each in its own channel, a model that takes 1 s.

Prints p50/p99/max of
  (a) answer, cold: gateway dispatch of a top-level mention → her answer at the local Discord
      (the edit of her "thinking…" placeholder, or her post when there was none). Cold: the
      thread is created from the mention and each channel's webhook is looked up and created;
  (b) answer, warm: a second burst, one mention inside each of those threads (webhooks cached,
      threads there);
  (c) `/investigate`: gateway dispatch of INTERACTION_CREATE → the interaction callback at the
      local Discord, for 200 commands at once (one per channel);
and checks the targets: answer p99 ≤ model delay + 1 s (2 s with the 1 s model), interaction
acknowledged within 3 s at p100 and within 100 ms at p99.

Everything runs in this one process and event loop (the local Discord's REST and gateway,
discord.py's real client, our adapter, the real engine with a SQLite file), so the figures
include the stand-in's own work: they are an upper bound of what the adapter adds.

    python benchmarks/bench_discord.py [--mentions 200] [--model-delay 1.0] [--api-latency 0.0]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.discord.app import DiscordAdapter  # noqa: E402
from benchmarks.burst import SlowModel, percentile  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from engine.engine import Engine, EngineConfig  # noqa: E402
from engine.memory.store import SQLiteMemory  # noqa: E402
from engine.personas import PersonaRegistry  # noqa: E402
from tests.servers.discord_api import (  # noqa: E402
    TOKEN,
    DiscordServer,
    Request,
    connected,
    local_discord,
)

QUESTION = "sophia why did sign-ups drop on Monday?"
EDIT = "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
BOT_EDIT = "/channels/{channel_id}/messages/{message_id}"
POSTS = ("/webhooks/{webhook_id}/{webhook_token}", "/channels/{channel_id}/messages")


def line(label: str, seconds: list[float]) -> str:
    if not seconds:
        return f"  {label:<40} n=0"
    ms = [s * 1000 for s in seconds]
    return (
        f"  {label:<40} n={len(ms):<4} p50={percentile(ms, 50):8.1f} ms  p99={percentile(ms, 99):8.1f} ms"
        f"  max={max(ms):8.1f} ms  mean={statistics.fmean(ms):8.1f} ms"
    )


def answer_times(server: DiscordServer, messages: list[dict[str, Any]]) -> list[float]:
    """Per mention: the first request after its dispatch that shows her answer in its channel or
    thread: an edit of a placeholder, or a post that was never edited afterwards (a placeholder
    that is later edited does not count)."""
    ok = [r for r in server.requests if r.status == 200 and isinstance(r.response, dict)]
    edited = {str(r.response.get("id")) for r in ok if r.method == "PATCH" and r.route in (EDIT, BOT_EDIT)}
    shown: list[Request] = [
        r for r in ok
        if (r.method == "PATCH" and r.route in (EDIT, BOT_EDIT))
        or (r.method == "POST" and r.route in POSTS and str(r.response.get("id")) not in edited)
    ]
    times: list[float] = []
    for m in messages:
        places = {m["channel_id"], m["id"]}
        since = server.dispatched_at[int(m["id"])]
        first = next((r.at for r in shown if r.at >= since and r.response.get("channel_id") in places), None)
        if first is not None:
            times.append(first - since)
    if len(times) < len(messages):
        print(f"  !! {len(messages) - len(times)} mention(s) not answered", file=sys.stderr)
    return times


def count(server: DiscordServer, since: float) -> dict[str, int]:
    """REST requests by route since `since` (what the adapter asked Discord for)."""
    by_route: dict[str, int] = {}
    for r in server.requests:
        if r.at >= since:
            key = f"{r.method} {r.route}"
            by_route[key] = by_route.get(key, 0) + 1
    return by_route


async def burst(server: DiscordServer, text: str, channels: list[int]) -> list[dict[str, Any]]:
    """One mention per channel (or thread), all dispatched at once through the gateway."""
    return list(await asyncio.gather(*(server.mention(text, channel_id=c) for c in channels)))


async def wait_answered(server: DiscordServer, messages: list[dict[str, Any]], timeout: float) -> None:
    pending = {m["id"] for m in messages}
    places = {m["id"]: {m["channel_id"], m["id"]} for m in messages}
    since = min(server.dispatched_at[int(m["id"])] for m in messages)
    seen = 0

    def done() -> bool:
        nonlocal seen
        requests, first_open = server.requests, None
        for i in range(seen, len(requests)):  # from the first request not answered at the last look
            r = requests[i]
            if not r.status:
                first_open = i if first_open is None else first_open
                continue
            if r.at >= since and r.status == 200 and r.method == "PATCH" and r.route in (EDIT, BOT_EDIT) \
                    and isinstance(r.response, dict):
                where = r.response.get("channel_id")
                for mid in [mid for mid in pending if where in places[mid]]:
                    pending.discard(mid)
        seen = len(requests) if first_open is None else first_open
        return not pending

    await server.wait_for(done, timeout=timeout)


async def run(n: int, delay: float, api_latency: float, tmp: Path, verbose: bool) -> dict[str, list[float]]:
    async with local_discord(latency=api_latency) as server:
        channels = [int(server.add_channel(f"bench-{i:04d}")["id"]) for i in range(n)]
        memory = await SQLiteMemory.open(tmp / "orchestra.db")
        engine = Engine(memory, SlowModel(delay), PersonaRegistry.defaults(), EngineConfig())
        settings = load_settings(
            db=tmp / "orchestra.db", discord_token=TOKEN, discord_api_url=server.url,
            discord_gateway_url=server.gateway_url, discord_guild_ids=[server.guild_id],
        )
        adapter = DiscordAdapter(settings, engine)
        engine.register_outbox("discord", adapter.outbox)
        await engine.start()
        await adapter.verify()
        figures: dict[str, list[float]] = {}
        try:
            async with connected(adapter.client, server, start=adapter.run, timeout=30):
                started = time.monotonic()
                cold = await burst(server, QUESTION, channels)
                await wait_answered(server, cold, timeout=60 + delay * 4)
                figures["cold"] = answer_times(server, cold)
                if verbose:
                    print("  cold REST calls:", count(server, started))
                await engine.wait_idle()
                await adapter.listeners.idle()

                started = time.monotonic()
                warm = await burst(server, "karen what could be wrong with that?", [int(m["id"]) for m in cold])
                await wait_answered(server, warm, timeout=60 + delay * 4)
                figures["warm"] = answer_times(server, warm)
                if verbose:
                    print("  warm REST calls:", count(server, started))
                await engine.wait_idle()
                await adapter.listeners.idle()

                started = time.monotonic()
                commands = await asyncio.gather(*(
                    server.slash_command("investigate", {"problem": f"why is checkout slow in region {i}?", "persona": "sophia"},
                                         channel_id=c)
                    for i, c in enumerate(channels)
                ))
                await server.wait_for(lambda: all(server.callbacks_for(p) for p in commands), timeout=30)
                figures["interaction"] = [server.callbacks_for(p)[0].latency or 0.0 for p in commands]
                kinds = {server.callbacks_for(p)[0].type for p in commands}
                if verbose:
                    print("  interaction callback types:", sorted(kinds))
                # the 200 investigations go on (more turns); cut them short while we can still post
                await engine.stop(grace=0)
        finally:
            await adapter.stop()
            await engine.stop()
            await memory.close()
        if server.errors:
            print(f"  !! the local Discord failed {len(server.errors)} time(s): {server.errors[:3]!r}", file=sys.stderr)
    return figures


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentions", type=int, default=200)
    parser.add_argument("--model-delay", type=float, default=1.0)
    parser.add_argument("--api-latency", type=float, default=0.0, help="seconds the local Discord takes per REST call")
    parser.add_argument("--verbose", action="store_true", help="also print the REST calls made per phase")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    print(f"Discord: {args.mentions} mentions at once, one per channel; model takes {args.model_delay:.1f} s; "
          f"local Discord REST latency {args.api_latency * 1000:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        f = await run(args.mentions, args.model_delay, args.api_latency, Path(tmp), args.verbose)
    target = args.model_delay + 1.0
    ok = True
    for phase, label in (("cold", "answered, cold (new thread + webhook)"), ("warm", "answered, warm (same threads)")):
        print(line(label, f[phase]))
        met = len(f[phase]) == args.mentions and percentile(f[phase], 99) <= target
        print(f"    target answer p99 ≤ {target:.1f} s: {'met' if met else 'MISSED'}")
        ok = ok and met
    acks = f["interaction"]
    print(line("/investigate acknowledged (dispatch → callback)", acks))
    p100 = len(acks) == args.mentions and max(acks) <= 3.0
    p99 = len(acks) == args.mentions and percentile(acks, 99) <= 0.100
    print(f"    target p100 ≤ 3 s: {'met' if p100 else 'MISSED'}; target p99 ≤ 100 ms: {'met' if p99 else 'MISSED'}")
    return 0 if ok and p100 and p99 else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
