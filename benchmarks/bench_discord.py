"""Discord under a burst: 200 mentions at once, each in its own channel, a model that takes 1 s.

Prints p50/p99/max of
  (a) answer, cold: gateway dispatch of a top-level mention → her answer at the local Discord
      (the edit of her "thinking…" placeholder, or her post when there was none). Cold: the
      thread is created from the mention and each channel's webhook is looked up and created;
  (b) answer, warm: a second burst, one mention inside each of those threads (webhooks cached,
      threads there);
  (c) `/investigate`: gateway dispatch of INTERACTION_CREATE → the interaction callback at the
      local Discord, for 200 commands at once (one per channel);
the REST calls per mention (by route) and the bot's CPU ms per mention in each phase, and checks
the targets: answer p99 ≤ model delay + 1 s (2 s with the 1 s model), interaction acknowledged
within 3 s at p100 and within 100 ms at p99.

The local Discord (REST and gateway, `tests/servers/discord_api.py`) runs in its own process
(this script with `--serve`, driven over its stdin/stdout), so the bot's process holds only
discord.py's real client, our adapter and the real engine with a SQLite file, and its CPU time
is the bot's alone. Both processes stamp times with `time.monotonic()` (one system-wide clock),
so "dispatch → answer" is measured across them. `--in-process` runs the stand-in in the bot's
own event loop instead (the old way: figures then include the stand-in's work).

    python benchmarks/bench_discord.py [--mentions 200] [--model-delay 1.0] [--api-latency 0.0]
                                       [--in-process] [--quick] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.burst import SlowModel, percentile  # noqa: E402

QUESTION = "sophia why did sign-ups drop on Monday?"
FOLLOW_UP = "karen what could be wrong with that?"
EDIT = "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
BOT_EDIT = "/channels/{channel_id}/messages/{message_id}"
POSTS = ("/webhooks/{webhook_id}/{webhook_token}", "/channels/{channel_id}/messages")


def line(label: str, seconds: list[float]) -> str:
    if not seconds:
        return f"  {label:<48} n=0"
    ms = [s * 1000 for s in seconds]
    return (
        f"  {label:<48} n={len(ms):<4} p50={percentile(ms, 50):8.1f} ms  p99={percentile(ms, 99):8.1f} ms"
        f"  max={max(ms):8.1f} ms  mean={statistics.fmean(ms):8.1f} ms"
    )


# --- the stand-in's side: what it measures (runs where the DiscordServer lives) -------------------


class Stand:
    """The local Discord and the figures read from its request log. Every method's arguments and
    results are JSON, so the same calls work in this process or over a pipe (`RemoteStand`)."""

    def __init__(self, server: Any, channels: list[int]):
        self.server = server
        self.channels = channels

    def info(self) -> dict[str, Any]:
        s = self.server
        return {"token": s.token, "url": s.url, "gateway_url": s.gateway_url, "guild_id": s.guild_id,
                "channels": self.channels}

    async def mentions(self, text: str, channels: list[int]) -> list[dict[str, str]]:
        """One mention per channel (or thread), all dispatched at once through the gateway."""
        sent = await asyncio.gather(*(self.server.mention(text, channel_id=c) for c in channels))
        return [{"id": m["id"], "channel_id": m["channel_id"]} for m in sent]

    async def answered(self, messages: list[dict[str, str]], timeout: float) -> dict[str, Any]:
        """Wait until every mention is answered; its answer times and the REST calls since."""
        s = self.server
        since = min(s.dispatched_at[int(m["id"])] for m in messages)
        await _wait_answered(s, messages, since, timeout)
        return {"times": _answer_times(s, messages), "received": _answer_times(s, messages, received=True),
                "calls": _count(s, since), "steps": _steps(s, messages),
                "tail": _steps(s, _slowest(s, messages, 5), statistics.fmean)}

    async def investigate(self, channels: list[int], timeout: float) -> dict[str, Any]:
        """200 `/investigate` at once; dispatch → callback per command."""
        s = self.server
        started = time.monotonic()
        commands = await asyncio.gather(*(
            s.slash_command("investigate", {"problem": f"why is checkout slow in region {i}?", "persona": "sophia"},
                            channel_id=c)
            for i, c in enumerate(channels)
        ))
        await s.wait_for(lambda: all(s.callbacks_for(p) for p in commands), timeout=timeout)
        return {"times": [s.callbacks_for(p)[0].latency or 0.0 for p in commands],
                "received": [s.callbacks_for(p)[0].received_latency or 0.0 for p in commands],
                "dispatched": [s.dispatched_at[int(p["id"])] for p in commands],
                "at": [s.callbacks_for(p)[0].at for p in commands],
                "kinds": sorted({s.callbacks_for(p)[0].type for p in commands}), "calls": _count(s, started)}

    def health(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"errors": [repr(e) for e in self.server.errors[:3]], "n_errors": len(self.server.errors),
                "cpu": usage.ru_utime + usage.ru_stime}


def _answer_times(server: Any, messages: list[dict[str, str]], received: bool = False) -> list[float]:
    """Per mention: the first request after its dispatch that shows her answer in its channel or
    thread: an edit of a placeholder, or a post that was never edited afterwards (a placeholder
    that is later edited does not count). Until the local Discord handled it, or (`received`)
    until its first bytes reached it (without the stand-in's own queue in a burst)."""
    ok = [r for r in server.requests if r.status == 200 and isinstance(r.response, dict)]
    edited = {str(r.response.get("id")) for r in ok if r.method == "PATCH" and r.route in (EDIT, BOT_EDIT)}
    shown = [r for r in ok
             if (r.method == "PATCH" and r.route in (EDIT, BOT_EDIT))
             or (r.method == "POST" and r.route in POSTS and str(r.response.get("id")) not in edited)]
    times: list[float] = []
    for m in messages:
        places = {m["channel_id"], m["id"]}
        since = server.dispatched_at[int(m["id"])]
        first = next((r for r in shown if r.at >= since and r.response.get("channel_id") in places), None)
        if first is not None:
            times.append(((first.arrived or first.at) if received else first.at) - since)
    return times


def _slowest(server: Any, messages: list[dict[str, str]], k: int) -> list[dict[str, str]]:
    """The `k` mentions answered last (relative to their dispatch)."""
    times = _answer_times(server, messages)
    if len(times) != len(messages):
        return messages[:0]
    return [m for _, m in sorted(zip(times, messages), key=lambda tm: tm[0])[-k:]]


def _steps(server: Any, messages: list[dict[str, str]], average: Any = statistics.median) -> dict[str, float]:
    """Per route, the median time from a mention's dispatch to the first request of that route
    made for it (sent when `r.at` says: the request's arrival), to see where an answer waits."""
    firsts: dict[str, list[float]] = {}
    for m in messages:
        since, ids = server.dispatched_at[int(m["id"])], {m["id"], m["channel_id"]}
        seen: set[str] = set()
        for r in server.requests:
            key = f"{r.method} {r.route}"
            if r.at < since or key in seen:
                continue
            if ids & (set(r.path.split("/")) | set(r.query.values())):
                seen.add(key)
                firsts.setdefault(key, []).append(r.at - since)
    return {k: average(v) for k, v in firsts.items()}


def _count(server: Any, since: float) -> dict[str, int]:
    """REST requests by route since `since` (what the bot asked Discord for)."""
    by_route: dict[str, int] = {}
    for r in server.requests:
        if r.at >= since:
            key = f"{r.method} {r.route}"
            by_route[key] = by_route.get(key, 0) + 1
    return by_route


async def _wait_answered(server: Any, messages: list[dict[str, str]], since: float, timeout: float) -> None:
    pending = {m["id"] for m in messages}
    places = {m["id"]: {m["channel_id"], m["id"]} for m in messages}
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

    try:
        await server.wait_for(done, timeout=timeout)
    except AssertionError:
        print(f"  !! {len(pending)} mention(s) not answered in {timeout:.0f} s", file=sys.stderr)


async def serve(n: int, api_latency: float) -> None:
    """`--serve`: the local Discord in this process, driven by JSON lines on stdin (one call
    each: {"op", "args"}), answered by JSON lines on stdout. The first line out is `info()`."""
    from tests.servers.discord_api import DiscordServer

    loop = asyncio.get_running_loop()
    async with DiscordServer(latency=api_latency) as server:
        stand = Stand(server, [int(server.add_channel(f"bench-{i:04d}")["id"]) for i in range(n)])
        out = sys.stdout
        out.write(json.dumps(stand.info()) + "\n")
        out.flush()
        while True:
            raw = await loop.run_in_executor(None, sys.stdin.readline)
            if not raw:
                return
            call = json.loads(raw)
            result = getattr(stand, call["op"])(*call.get("args", []))
            if asyncio.iscoroutine(result):
                result = await result
            out.write(json.dumps(result) + "\n")
            out.flush()


class RemoteStand:
    """`Stand` in a child process (`--serve`): the same calls, over its stdin/stdout."""

    def __init__(self, process: asyncio.subprocess.Process, info: dict[str, Any]):
        self.process, self._info = process, info

    @classmethod
    async def start(cls, n: int, api_latency: float) -> RemoteStand:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--serve", "--mentions", str(n),
            "--api-latency", str(api_latency), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=env, limit=64 * 1024 * 1024,
        )
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 60)
        if not first:
            raise SystemExit("the local Discord did not start (see above)")
        return cls(process, json.loads(first))

    def info(self) -> dict[str, Any]:
        return self._info

    async def _call(self, op: str, *args: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps({"op": op, "args": list(args)}) + "\n").encode())
        await self.process.stdin.drain()
        answer = await self.process.stdout.readline()
        if not answer:
            raise SystemExit(f"the local Discord stopped during {op}")
        return json.loads(answer)

    async def mentions(self, text: str, channels: list[int]) -> list[dict[str, str]]:
        return await self._call("mentions", text, channels)

    async def answered(self, messages: list[dict[str, str]], timeout: float) -> dict[str, Any]:
        return await self._call("answered", messages, timeout)

    async def investigate(self, channels: list[int], timeout: float) -> dict[str, Any]:
        return await self._call("investigate", channels, timeout)

    async def health(self) -> dict[str, Any]:
        return await self._call("health")

    async def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except asyncio.TimeoutError:
            self.process.kill()
            await self.process.wait()


# --- the bot's side -------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """This process's CPU time (user + system): the bot's work when the stand-in is elsewhere."""
    return time.process_time()


async def run(stand: Any, delay: float, tmp: Path, verbose: bool) -> dict[str, Any]:
    from adapters.discord.app import DiscordAdapter
    from bot.heap import settle_heap, tune_collector
    from bot.settings import load_settings
    from engine.engine import Engine, EngineConfig
    from engine.memory.store import SQLiteMemory
    from engine.personas import PersonaRegistry

    tune_collector()  # the collector as the bot runs it (bot/heap.py); its heap is frozen once connected
    info = stand.info()
    channels: list[int] = info["channels"]
    n = len(channels)
    memory = await SQLiteMemory.open(tmp / "orchestra.db")
    engine = Engine(memory, SlowModel(delay), PersonaRegistry.defaults(), EngineConfig())
    settings = load_settings(
        db=tmp / "orchestra.db", discord_token=info["token"], discord_api_url=info["url"],
        discord_gateway_url=info["gateway_url"], discord_guild_ids=[info["guild_id"]],
    )
    adapter = DiscordAdapter(settings, engine)
    engine.register_outbox("discord", adapter.outbox)
    figures: dict[str, Any] = {}
    await engine.start()
    await adapter.verify()
    running = asyncio.ensure_future(adapter.run())
    try:
        deadline = time.monotonic() + 30
        while adapter.client.get_guild(info["guild_id"]) is None:
            if running.done():
                running.result()
            if time.monotonic() > deadline:
                raise SystemExit("the bot did not connect to the local Discord")
            await asyncio.sleep(0.01)
        settle_heap()  # as bot.platforms does when Discord says it is connected

        async def phase(name: str, work: Any) -> dict[str, Any]:
            cpu = cpu_seconds()
            result = await work
            await engine.wait_idle()
            await adapter.listeners.idle()
            result["cpu"] = cpu_seconds() - cpu
            figures[name] = result
            return result

        async def burst(text: str, where: list[int]) -> dict[str, Any]:
            sent = await stand.mentions(text, where)
            result = await stand.answered(sent, 60 + delay * 4)
            result["sent"] = sent
            return result

        cold = await phase("cold", burst(QUESTION, channels))
        await phase("warm", burst(FOLLOW_UP, [int(m["id"]) for m in cold["sent"]]))
        cpu = cpu_seconds()
        figures["interaction"] = await stand.investigate(channels, 30)
        figures["interaction"]["cpu"] = cpu_seconds() - cpu  # the acks, and the investigations begun meanwhile
        # the investigations go on (more turns); cut them short while we can still post
        await engine.stop(grace=0)
    finally:
        await adapter.stop()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await engine.stop()
        await memory.close()
    figures["n"] = n
    return figures


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentions", type=int, default=200)
    parser.add_argument("--model-delay", type=float, default=1.0)
    parser.add_argument("--api-latency", type=float, default=0.0, help="seconds the local Discord takes per REST call")
    parser.add_argument("--in-process", action="store_true", help="run the local Discord in the bot's own event loop")
    parser.add_argument("--quick", action="store_true", help="20 mentions (a smoke run)")
    parser.add_argument("--verbose", action="store_true", help="also print the REST calls by route per phase")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child: the local Discord
    args = parser.parse_args()
    n = 20 if args.quick else args.mentions
    logging.basicConfig(level=logging.ERROR)
    if args.serve:
        await serve(n, args.api_latency)
        return 0

    load = os.getloadavg()
    print(f"Discord: {n} mentions at once, one per channel; model takes {args.model_delay:.1f} s; local Discord "
          f"REST latency {args.api_latency * 1000:.0f} ms, {'in the bot process' if args.in_process else 'in its own process'}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.in_process:
            from tests.servers.discord_api import local_discord

            async with local_discord(latency=args.api_latency) as server:
                stand: Any = Stand(server, [int(server.add_channel(f"bench-{i:04d}")["id"]) for i in range(n)])
                f = await run(stand, args.model_delay, Path(tmp), args.verbose)
                health = stand.health()
        else:
            stand = await RemoteStand.start(n, args.api_latency)
            try:
                f = await run(stand, args.model_delay, Path(tmp), args.verbose)
                health = await stand.health()
            finally:
                await stand.stop()
    if health["n_errors"]:
        print(f"  !! the local Discord failed {health['n_errors']} time(s): {health['errors']}", file=sys.stderr)

    target = args.model_delay + 1.0
    ok = True
    whose = "bot + stand-in" if args.in_process else "bot"
    for phase, label in (("cold", "answered, cold (new thread + webhook)"), ("warm", "answered, warm (same threads)")):
        times = f[phase]["times"]
        print(line(label, times))
        print(line("  same, until its bytes reached the local Discord", f[phase]["received"]))
        calls = f[phase]["calls"]
        print(f"    REST calls per mention: {sum(calls.values()) / n:.2f};  CPU per mention ({whose}): "
              f"{f[phase]['cpu'] * 1000 / n:.2f} ms")
        if args.verbose:
            steps = f[phase].get("steps", {})
            for route, k in sorted(calls.items(), key=lambda rk: steps.get(rk[0], 1e9)):
                at = f"first at {steps[route] * 1000:7.1f} ms (median)" if route in steps else ""
                print(f"      {k / n:5.2f}  {route:<70} {at}")
            tail = f[phase].get("tail", {})
            if tail:
                print("      the 5 answered last, first request of each route (mean): " + ", ".join(
                    f"{route.split()[0]} {route.split()[1][:40]} {t * 1000:.0f} ms" for route, t in sorted(tail.items(), key=lambda rt: rt[1])))
        if len(times) < n:
            print(f"    !! {n - len(times)} mention(s) not answered", file=sys.stderr)
        met = len(times) == n and percentile(times, 99) <= target
        print(f"    target answer p99 ≤ {target:.1f} s: {'met' if met else 'MISSED'}")
        ok = ok and met
    acks = f["interaction"]["times"]
    print(line("/investigate acknowledged (dispatch → callback)", acks))
    print(line("  same, until its bytes reached the local Discord", f["interaction"]["received"]))
    print(f"    callback types {f['interaction']['kinds']};  CPU per command ({whose}, acks and the "
          f"investigations begun meanwhile): {f['interaction']['cpu'] * 1000 / n:.2f} ms")
    p100 = len(acks) == n and max(acks) <= 3.0
    p99 = len(acks) == n and percentile(acks, 99) <= 0.100
    print(f"    target p100 ≤ 3 s: {'met' if p100 else 'MISSED'}; target p99 ≤ 100 ms: {'met' if p99 else 'MISSED'}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  bot peak memory {peak:.0f} MB" + ("" if args.in_process else f"; stand-in CPU {health['cpu']:.2f} s"))
    return 0 if ok and p100 and p99 else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
