"""Several replicas on PostgreSQL against one process on SQLite, under one cold burst of mentions.

For 1, 2, 3 `orchestra` replicas (Slack HTTP mode) on one throw-away PostgreSQL server
(`tests/pg_server.py`, a fresh database per run) and for one process on SQLite, it sends one burst
of mentions (one channel each, a model that takes 1 s) the moment every replica is ready, spread
round-robin across the replicas (the benchmark is the load balancer), and prints:

  ack        request sent → 200: p50 / p99
  answer     mention sent → her answer replacing "thinking…" (`chat.update`): p50 / p99
  answers/s  mentions / (last answer − first mention)
  cpu ms/m   each replica's CPU (user+system, /proc) during the burst ÷ all mentions
  pg ms/m    the PostgreSQL server's CPU (postmaster and its backends) ÷ mentions
  xact/m     PostgreSQL transactions (commits + rollbacks in the database) ÷ mentions

Answers are counted once per mention from the local Slack's records (as `bench_slack.py` does; its
process start-up, stand-ins and burst are reused here).

    python benchmarks/bench_replicas.py                    # 600 mentions; 1, 2, 3 replicas; SQLite
    python benchmarks/bench_replicas.py --quick            # 100 mentions
    python benchmarks/bench_replicas.py --replicas 1,3 --mentions 300 --no-sqlite
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

from benchmarks.bench_slack import SECRET, TICKS, cpu_seconds, free_port, start_bot, start_standins, stop_bot  # noqa: E402
from benchmarks.burst import percentile  # noqa: E402
from tests.pg_server import PgServer, start_server  # noqa: E402


#: Seconds before PostgreSQL's statistics (`pg_stat_database`, `pg_stat_user_tables`) count a burst
#: in full: a backend that has just gone idle sends its counts up to 10 s later. Read sooner, the
#: transactions of the burst are undercounted, and then show up as if made while idle.
STATS_DELAY = 11.0
#: Seconds of idleness counted after a burst (after STATS_DELAY).
IDLE_WINDOW = 10.0


def pg_cpu_seconds(server: PgServer) -> float:
    """The server's CPU so far: the postmaster, its reaped children, and its live backends."""
    postmaster = int((server.directory / "data" / "postmaster.pid").read_text().split()[0])
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(f) for f in fields[11:15]) / TICKS  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == postmaster:
            total += (int(stat[11]) + int(stat[12])) / TICKS
    return total


def pg_transactions(server: PgServer, url: str) -> int:
    database = url.rsplit("/", 1)[1]
    return int(server.psql(f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{database}'"))


def pg_table_writes(server: PgServer, url: str) -> dict[str, int]:
    """Rows inserted, updated and deleted so far, by table (the statistics collector's counts)."""
    out = server.psql("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables", url.rsplit("/", 1)[1])
    return {name: int(count) for name, count in (line.split("|") for line in out.split())}


async def wait_ready(session: aiohttp.ClientSession, port: int) -> None:
    """`/ready` answers 200 (the load balancer's check)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with session.get(f"http://127.0.0.1:{port}/ready") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the replica on port {port} did not get ready")


async def run_one(label: str, replicas: int, db: str, n: int, urls: dict[str, str], tmp: Path, run: int,
                  http: aiohttp.ClientSession, pg: PgServer | None) -> list[str]:
    ports = [free_port() for _ in range(replicas)]
    dirs = [tmp / f"run{run}-replica{i}" for i in range(replicas)]
    for d in dirs:
        d.mkdir(parents=True)
    bots: list[asyncio.subprocess.Process] = []
    try:
        # the first creates the tables; the others start together
        first, ready = await start_bot("http", urls, db if pg else str(dirs[0] / "orchestra.db"), ports[0], cwd=dirs[0])
        bots.append(first)
        rest = await asyncio.gather(*(start_bot("http", urls, db, p, cwd=d) for p, d in zip(ports[1:], dirs[1:])))
        bots += [b for b, _ in rest]
        ready = max([ready, *(r for _, r in rest)])
        await asyncio.gather(*(wait_ready(http, p) for p in ports))
        cpu_before = [cpu_seconds(b.pid) for b in bots]
        pg_before = (pg_cpu_seconds(pg), pg_transactions(pg, db), pg_table_writes(pg, db)) if pg else None
        spec = {"mode": "http", "n": n, "run": str(run), "secret": SECRET,
                "targets": [f"http://127.0.0.1:{p}/slack/events" for p in ports]}
        async with http.post(urls["control"] + "/bench/burst", json=spec, timeout=aiohttp.ClientTimeout(total=900)) as response:
            r = await response.json()
        await asyncio.sleep(0.3)  # the last records after the last update
        cpu = [(cpu_seconds(b.pid) - c) * 1000 / n for b, c in zip(bots, cpu_before)]
        extra = []
        if pg and pg_before:
            pg_ms = f"{(pg_cpu_seconds(pg) - pg_before[0]) * 1000 / n:6.2f}"
            await asyncio.sleep(STATS_DELAY)  # PostgreSQL's statistics catch up (see STATS_DELAY)
            xacts = f"{(pg_transactions(pg, db) - pg_before[1]) / n:6.1f}"
            writes = pg_table_writes(pg, db)
            per_table = sorted(((v - pg_before[2].get(k, 0)) / n, k) for k, v in writes.items())
            extra.append(f"  {'':<14} rows written per mention: "
                         + ", ".join(f"{k} {v:.1f}" for v, k in reversed(per_table) if v >= 0.05))
            idle, since = pg_transactions(pg, db), time.monotonic()
            await asyncio.sleep(IDLE_WINDOW)
            rate = (pg_transactions(pg, db) - idle) / (time.monotonic() - since)
            extra.append(f"  {'':<14} idle afterwards: {rate:.2f} transactions/s for {replicas} replica(s) "
                         "(benchmarks/bench_idle.py says which)")
        else:
            pg_ms = xacts = f"{'-':>6}"
    finally:
        await asyncio.gather(*(stop_bot(b) for b in bots))
    acks = [a * 1000 for a in r["acks"]]
    span = r["last_answer"] - r["started"]
    rate = len(r["answers"]) / span if span > 0 else float("nan")
    missing = f"  !! {r['unanswered']} unanswered" if r["unanswered"] else ""
    cpus = " ".join(f"{c:.2f}" for c in cpu)
    return [
        f"  {label:<14} {ready:5.2f} {percentile(acks, 50):7.1f} {percentile(acks, 99):7.1f} "
        f"{percentile(r['answers'], 50):7.2f} {percentile(r['answers'], 99):7.2f} {rate:9.1f} "
        f"{sum(cpu):8.2f}  {pg_ms} {xacts}   per replica: {cpus}{missing}",
        *extra,
    ]


HEADER = (
    f"  {'setup':<14} {'ready':>5} {'ack p50':>7} {'ack p99':>7} {'ans p50':>7} {'ans p99':>7} {'answers/s':>9} "
    f"{'cpu ms/m':>8}  {'pg ms/m':>6} {'xact/m':>6}\n"
    f"  {'':<14} {'s':>5} {'ms':>7} {'ms':>7} {'s':>7} {'s':>7} {'':>9} {'(all)':>8}"
)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", default="1,2,3", help="replica counts on PostgreSQL, comma-separated")
    parser.add_argument("--mentions", type=int, default=600)
    parser.add_argument("--model-delay", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="100 mentions")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the one process on SQLite")
    args = parser.parse_args()
    counts = [int(c) for c in args.replicas.split(",") if c.strip()]
    n = 100 if args.quick else args.mentions
    load = os.getloadavg()
    print(f"One cold burst of {n} mentions (one channel each), Slack HTTP mode, round-robin across replicas; "
          f"model {args.model_delay:.1f} s; load before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    standins, urls = await start_standins(args.model_delay)
    pg = start_server() if counts else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with aiohttp.ClientSession() as http:
                print(HEADER, flush=True)
                run = 0
                setups = [] if args.no_sqlite else [("sqlite 1", 1, "")]
                setups += [(f"postgres {c}", c, pg.create_database()) for c in counts if pg]
                for label, replicas, db in setups:
                    run += 1
                    for line in await run_one(label, replicas, db, n, urls, Path(tmp), run, http, pg if db else None):
                        print(line, flush=True)
    finally:
        standins.terminate()
        await standins.wait()
        if pg:
            pg.stop()
    load = os.getloadavg()
    print(f"load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
