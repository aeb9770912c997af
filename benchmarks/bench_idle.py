"""What idle `orchestra serve` replicas cost their PostgreSQL: transactions a second, and which
statements make them.

It starts a throw-away PostgreSQL (`tests/pg_server.py`, with `pg_stat_statements` loaded and autovacuum off), N real
replicas (Slack HTTP mode against the local Slack of `slack_standins.py`, as `bench_replicas.py`
does), waits until all are ready and PostgreSQL's statistics have caught up (a backend reports its
counts up to 10 s after it goes idle: counted sooner, a burst's transactions look like idle ones),
and then, with nothing to do, counts over a window:

  xact/s     PostgreSQL transactions (commits + rollbacks in the bot's database) a second, per replica
  statements the statements run in the window (`pg_stat_statements`), calls a second, all replicas

then the same after a burst of mentions (`--burst N`, 0 to skip), once the burst is answered.

    python benchmarks/bench_idle.py                        # 3 replicas, 30 s windows, a burst of 100
    python benchmarks/bench_idle.py --replicas 1 --window 20 --burst 0
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from benchmarks.bench_replicas import STATS_DELAY, pg_transactions, wait_ready  # noqa: E402
from benchmarks.bench_slack import SECRET, free_port, start_bot, start_standins, stop_bot  # noqa: E402
from tests.pg_server import PgServer, start_server  # noqa: E402

#: pg_stat_statements to name the statements; autovacuum off: after a burst it runs its own transactions
#: in the database (dozens at a time), which are the server's housekeeping, not the replicas' doing.
STATEMENTS = "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all -c autovacuum=off"


def reset_statements(pg: PgServer) -> None:
    pg.psql("SELECT pg_stat_statements_reset()")


def statements(pg: PgServer, url: str) -> list[tuple[int, str]]:
    """(calls, query) of the bot's database since the last reset, most called first."""
    database = url.rsplit("/", 1)[1]
    out = pg.psql(
        "SELECT s.calls, regexp_replace(s.query, '\\s+', ' ', 'g') FROM pg_stat_statements s "
        f"JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '{database}' ORDER BY s.calls DESC"
    )
    rows = []
    for line in out.splitlines():
        if "|" in line:
            calls, query = line.split("|", 1)
            rows.append((int(calls), query))
    return rows


async def idle_window(label: str, pg: PgServer, db: str, replicas: int, window: float, top: int) -> list[str]:
    reset_statements(pg)
    before, started = pg_transactions(pg, db), time.monotonic()
    await asyncio.sleep(window)
    xacts, span = pg_transactions(pg, db) - before, time.monotonic() - started
    lines = [f"{label}: {xacts / span:.2f} transactions/s for {replicas} replica(s), "
             f"{xacts / span / replicas:.2f} a replica ({xacts} in {span:.0f} s)"]
    for calls, query in statements(pg, db)[:top]:
        if "pg_stat_statements" in query:
            continue
        lines.append(f"  {calls / span:7.2f}/s  {query[:150]}")
    return lines


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--window", type=float, default=30.0, help="seconds of idleness counted")
    parser.add_argument("--settle", type=float, default=STATS_DELAY,
                        help="seconds waited before counting (shorter: the statistics still count start-up or the burst)")
    parser.add_argument("--burst", type=int, default=100, help="mentions sent before the second window (0: none)")
    parser.add_argument("--top", type=int, default=12, help="statements listed")
    parser.add_argument("--lease", default="", help="ORCHESTRA_REPLICA_LEASE for the replicas (default: theirs)")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"{args.replicas} idle replica(s) on one PostgreSQL; load before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} cores", flush=True)
    standins, urls = await start_standins(0.2)
    pg = start_server(STATEMENTS)
    bots: list[asyncio.subprocess.Process] = []
    try:
        pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        db = pg.create_database()
        extra = {"ORCHESTRA_REPLICA_LEASE": args.lease} if args.lease else None
        with tempfile.TemporaryDirectory() as tmp:
            ports = [free_port() for _ in range(args.replicas)]
            dirs = [Path(tmp) / f"replica{i}" for i in range(args.replicas)]
            for d in dirs:
                d.mkdir()
            first, _ = await start_bot("http", urls, db, ports[0], cwd=dirs[0], extra_env=extra)
            bots.append(first)
            rest = await asyncio.gather(*(start_bot("http", urls, db, p, cwd=d, extra_env=extra)
                                          for p, d in zip(ports[1:], dirs[1:])))
            bots += [b for b, _ in rest]
            async with aiohttp.ClientSession() as http:
                await asyncio.gather(*(wait_ready(http, p) for p in ports))
                await asyncio.sleep(args.settle)
                for line in await idle_window("idle after start-up", pg, db, args.replicas, args.window, args.top):
                    print(line, flush=True)
                if args.burst:
                    spec = {"mode": "http", "n": args.burst, "run": "1", "secret": SECRET,
                            "targets": [f"http://127.0.0.1:{p}/slack/events" for p in ports]}
                    async with http.post(urls["control"] + "/bench/burst", json=spec,
                                         timeout=aiohttp.ClientTimeout(total=900)) as response:
                        r = await response.json()
                    print(f"burst of {args.burst} mentions: {len(r['answers'])} answered", flush=True)
                    await asyncio.sleep(args.settle)
                    for line in await idle_window("idle after the burst", pg, db, args.replicas, args.window, args.top):
                        print(line, flush=True)
    finally:
        await asyncio.gather(*(stop_bot(b) for b in bots))
        standins.terminate()
        await standins.wait()
        pg.stop()
    load = os.getloadavg()
    print(f"load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
