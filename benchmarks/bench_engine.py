"""The engine's own overhead per turn, and how many investigations run at once.

    python benchmarks/bench_engine.py [--sizes 0,10000,100000] [--rounds 200] [--concurrent 200]
                                      [--backend sqlite,postgresql]

1. Overhead: the model is the offline provider (instant: well under a millisecond a call) and
   the platform a no-op outbox, so what is timed is the engine itself: accept, lanes, routing,
   prompt and history, recall, validation, turn and post records. Measured with 0, 10,000 and
   100,000 turns already stored in the same channel, on each backend asked for: SQLite (a
   temporary file) and PostgreSQL (a throw-away server started from the machine's PostgreSQL,
   as the tests start it, fsync off: tests/pg_server.py; or the server `--db URL` names). The
   stored turns are seeded in SQLite and moved with `orchestra db migrate`'s copy.
     conversation turn   submit → answer recorded, one persona turn
     investigation turn  an investigation (root + researcher + critic + planner + notice),
                         divided by its 3 turns
2. Concurrency: a model that takes 1 s a call. One investigation alone, then N at once, each
   in its own channel; the ratio of the two wall times (target: ≤ 1.2 for N = 200). Then 1,000
   mentions at once: the engine's and the memory's CPU per mention under a burst.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory import PLACE, seed  # noqa: E402

from bot.heap import tune_collector  # noqa: E402
from engine.engine import Engine, EngineConfig  # noqa: E402
from engine.memory import SQLiteMemory  # noqa: E402
from engine.memory.open import open_memory  # noqa: E402
from engine.models import PostedMessage, Reply, Task, TaskKind, Voice  # noqa: E402
from engine.personas import PersonaRegistry  # noqa: E402
from engine.ports import ModelRequest, ModelResponse  # noqa: E402
from engine.providers import OfflineProvider  # noqa: E402

PLATFORM, WORKSPACE, CHANNEL = PLACE
QUESTIONS = [
    "why did signups drop after the pricing change",
    "intermittent 401s on checkout since the token refresh deploy",
    "the queue latency doubled after the schema migration",
    "which vendor caused the cache misses last week",
]


class NullOutbox:
    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def post(self, reply: Reply, replace: str | None = None, resume: PostedMessage | None = None) -> PostedMessage:
        if resume is not None:
            return resume
        message_id = replace or f"{time.time():.6f}.{next(self._ids)}"
        return PostedMessage(message_id=message_id, thread=reply.thread or message_id)

    async def working(self, voice: Voice, channel: str, thread: str | None, key: str = "") -> str | None:
        return f"{time.time():.6f}.{next(self._ids)}"  # a placeholder, as on Slack

    async def find_posted(self, channel: str, thread: str | None, key: str) -> PostedMessage | None:
        return None


class SlowModel:
    """A remote model that takes `delay` seconds a call. Its answers are made once up front (by
    the offline provider), so the model's own work is not counted as the engine's."""

    name = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.inner = OfflineProvider()
        self.canned: dict[str | None, ModelResponse] = {}

    async def generate(self, request: ModelRequest) -> ModelResponse:
        if request.schema_name not in self.canned:
            self.canned[request.schema_name] = await self.inner.generate(request)
        await asyncio.sleep(self.delay)
        return self.canned[request.schema_name]

    async def aclose(self) -> None:
        pass


_events = itertools.count(1)


def task(text: str, kind: TaskKind, channel: str = CHANNEL) -> Task:
    n = next(_events)
    thread = f"99999.{n}" if kind == TaskKind.MESSAGE else None
    return Task(platform=PLATFORM, workspace=WORKSPACE, channel=channel, thread=thread, user="U1",
                text=text, event_id=f"bench-{n}", kind=kind, message_id=f"99999.{n}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def engine_on(db: Path | str, provider) -> tuple[Engine, Any]:
    memory = await open_memory(db)
    engine = Engine(memory, provider, PersonaRegistry.defaults(), EngineConfig())
    engine.register_outbox(PLATFORM, NullOutbox())
    return engine, memory


class Backend:
    """Where each measurement's fresh memory lives: a SQLite file in a temporary directory, or a
    new database on PostgreSQL: a throw-away server (started once, stopped at the end), or the
    server of `--db URL` (a user that may CREATE DATABASE; the databases made are dropped)."""

    def __init__(self, name: str, url: str | None = None) -> None:
        self.name = name
        self.server = None
        self.url = url
        self.made: list[str] = []
        if name == "postgresql" and url is None:
            from tests.pg_server import start_server

            self.server = start_server()

    async def _create_database(self) -> str:
        if self.server is not None:
            return self.server.create_database()
        import asyncpg
        from urllib.parse import urlsplit, urlunsplit

        name = f"orchestra_bench_{len(self.made) + 1}_{int(time.time())}"
        con = await asyncpg.connect(self.url)
        try:
            await con.execute(f'CREATE DATABASE "{name}"')
        finally:
            await con.close()
        self.made.append(name)
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))

    async def fresh(self, tmp: str, size: int = 0) -> Path | str:
        """A memory with `size` turns stored in one channel."""
        path = Path(tmp) / "bench.db"
        await (await SQLiteMemory.open(path)).close()  # create the schema
        if size:
            seed(path, size, random.Random(7))
        if self.name == "sqlite":
            return path
        from bot.db_migrate import migrate

        url = await self._create_database()
        await migrate(path, url)
        return url

    async def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.made:
            import asyncpg

            con = await asyncpg.connect(self.url)
            try:
                for name in self.made:
                    await con.execute(f'DROP DATABASE IF EXISTS "{name}"')
            finally:
                await con.close()


async def overhead(backend: Backend, size: int, rounds: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        engine, memory = await engine_on(await backend.fresh(tmp, size), OfflineProvider())
        try:
            for i in range(10):  # warm up caches and the database's page cache
                await engine.run(task(f"sophia, {QUESTIONS[i % 4]}", TaskKind.MESSAGE))
            conv, inv = [], []
            for i in range(rounds):
                t0 = time.perf_counter()
                await engine.run(task(f"sophia, {QUESTIONS[i % 4]} ({i})", TaskKind.MESSAGE))
                conv.append(time.perf_counter() - t0)
            for i in range(max(20, rounds // 4)):
                t0 = time.perf_counter()
                rec = await engine.run(task(f"{QUESTIONS[i % 4]} ({i})", TaskKind.INVESTIGATE))
                inv.append((time.perf_counter() - t0) / max(1, rec.turn_count))
        finally:
            await memory.close()
    ms = lambda v: v * 1000  # noqa: E731
    return {
        "conversation turn": (ms(statistics.median(conv)), ms(pct(conv, 0.99))),
        "investigation turn": (ms(statistics.median(inv)), ms(pct(inv, 0.99))),
    }


async def concurrency(backend: Backend, n: int, delay: float) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        engine, memory = await engine_on(await backend.fresh(tmp), SlowModel(delay))
        try:
            t0 = time.perf_counter()
            await engine.run(task(QUESTIONS[1], TaskKind.INVESTIGATE, channel="solo"))
            single = time.perf_counter() - t0
            t0 = time.perf_counter()
            recs = await asyncio.gather(*(
                engine.run(task(QUESTIONS[i % 4], TaskKind.INVESTIGATE, channel=f"C{i}")) for i in range(n)
            ))
            many = time.perf_counter() - t0
        finally:
            await memory.close()
    complete = sum(1 for r in recs if r is not None and r.status.value == "complete")
    return single, many, complete


async def mention_burst(backend: Backend, n: int, delay: float) -> tuple[float, float]:
    """`n` mentions at once, each in its own channel (a conversation turn: placeholder, recall,
    prompt, the model, validation, records, the answer), with a model taking `delay` s and a no-op
    platform: the engine's and SQLite's CPU per mention (this process, its threads included), and
    the wall time. What the bot spends on top of this is its platform and model calls
    (`bench_calls.py`) and taking the events (`bench_ack.py`)."""
    with tempfile.TemporaryDirectory() as tmp:
        engine, memory = await engine_on(await backend.fresh(tmp), SlowModel(delay))
        try:
            await engine.run(task(QUESTIONS[0], TaskKind.MESSAGE, channel="warm"))
            cpu, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(engine.run(task(QUESTIONS[i % 4], TaskKind.MESSAGE, channel=f"M{i}")) for i in range(n)))
            return (time.process_time() - cpu) / n * 1000, time.perf_counter() - t0
        finally:
            await memory.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,10000,100000")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--backend", default="sqlite",
                        help="sqlite, postgresql, or both: sqlite,postgresql (default sqlite)")
    parser.add_argument("--db", metavar="URL", help="PostgreSQL: use this server (postgresql://user@host/db, a user "
                        "that may create databases) instead of starting a throw-away one")
    parser.add_argument("--skip-concurrency", action="store_true", help="only the overhead per turn")
    args = parser.parse_args()
    tune_collector()  # the collector as the bot runs it (bot/heap.py)
    names = [b.strip().lower() for b in args.backend.split(",") if b.strip()]
    if not names or any(b not in ("sqlite", "postgresql") for b in names):
        parser.error("--backend takes sqlite, postgresql, or sqlite,postgresql")
    for name in names:
        backend = Backend(name, args.db if name == "postgresql" else None)
        try:
            await run_backend(backend, args)
        finally:
            await backend.close()


async def run_backend(backend: Backend, args: argparse.Namespace) -> None:
    print(f"\n== {backend.name}")
    print("Engine overhead per turn (offline provider as an instant model, no-op platform)")
    print(f"{'stored turns':>13}  {'what':<20} {'p50 ms':>8} {'p99 ms':>8}")
    base = None
    for size in (int(s) for s in args.sizes.split(",")):
        figures = await overhead(backend, size, args.rounds)
        for what, (p50, p99) in figures.items():
            print(f"{size:>13,}  {what:<20} {p50:8.2f} {p99:8.2f}", flush=True)
        p50 = figures["conversation turn"][0]
        base = base if base is not None else p50
        print(f"{'':>13}  conversation p50 vs 0 stored: {p50 / base:.2f}x")
    if args.skip_concurrency:
        return
    single, many, complete = await concurrency(backend, args.concurrent, args.delay)
    print(f"\nConcurrency with a {args.delay:g} s model (3 model calls an investigation)")
    print(f"  1 investigation:               {single:6.2f} s")
    print(f"  {args.concurrent} at once:                {many:6.2f} s  ({complete} complete)")
    print(f"  ratio:                         {many / single:6.2f}x  (target ≤ 1.2)")
    print(f"  throughput:                    {complete / many:6.1f} investigations/s")
    cpu, wall = await mention_burst(backend, 1000, args.delay)
    print(f"\n1,000 mentions at once ({args.delay:g} s model, no-op platform): {cpu:.2f} ms of CPU a mention "
          f"(engine and {backend.name}), all answered in {wall:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
