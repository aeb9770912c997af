"""Recall on PostgreSQL at 100,000 turns in a channel: the plans (EXPLAIN ANALYZE) and timings.

    python benchmarks/bench_recall_postgres.py [--turns 100000] [--rounds 20] [--plans]

Starts a throw-away PostgreSQL (tests/pg_server.py: initdb + pg_ctl, as the `postgres` user when
run as root), fills two channels of `--turns` turns each with SQL `generate_series` (no Python
loop), VACUUM ANALYZE, then for each kind of query prints the statement's execution time
(EXPLAIN ANALYZE with a fresh plan and with the generic, cached one; the plan itself with
--plans) and the median/max of `recall()` as the engine calls it (one round trip).

The channel BIG: 10 words a turn from a skewed vocabulary (w0 very common ... w19999 rare),
`deploy` in every second turn, `oldhat` in its oldest half only, `zookeeper quorum` in its
oldest turn. The channel OTHER: `kafka` in every turn (a word common in another channel and
absent from BIG). Why recall is built the way it is: engine/memory/pg/recall.py.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.memory.pg.recall import RECALL, WINDOW
from engine.memory.pg.store import PostgresMemory
from engine.memory.recall import PER_TERM, fts_terms
from tests.pg_server import start_server

FILL = """
INSERT INTO channels (platform, workspace, channel) VALUES ('slack', 'T', '{ch}');
INSERT INTO threads (id, chan, kind, platform, workspace, channel, thread, title, inv_type, phase, status,
                     lead, turn_count, created_at, updated_at)
SELECT '{ch}-' || r, (SELECT id FROM channels WHERE channel = '{ch}'), 'investigation', 'slack', 'T',
       '{ch}', r::text, 'thread ' || r, 'general', 'discovery', 'active', 'sophia', 0,
       '2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:00.000000+00:00'
FROM generate_series(0, 999) AS r;
INSERT INTO turns (thread_id, seq, doc, ntok, step, role, author, text, structured, input_tokens,
                   output_tokens, created_at)
SELECT '{ch}-' || (g % 1000), g / 1000 + 1,
       ((SELECT id FROM channels WHERE channel = '{ch}') << 32) + 4294967295 - g,
       11, 0, 'persona', 'sophia',
       concat_ws(' ', {extra}, (SELECT string_agg('w' || floor(power(random(), 4) * 20000)::int, ' ')
                                FROM generate_series(1, 10) AS s WHERE g > 0)),
       1, 0, 0,
       to_char((now() - ({n} - g) * interval '1 minute') AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
FROM generate_series(1, {n}) AS g;
UPDATE channels SET docs = {n}, tokens = {n} * 11 WHERE channel = '{ch}';
"""

QUERIES = {
    "common (deploy: every 2nd turn)": "deploy",
    "rare and old (zookeeper: the oldest turn)": "zookeeper",
    "absent here, in every turn of another channel (kafka)": "kafka",
    "mixed (deploy zookeeper quorum w1 w5000)": "deploy zookeeper quorum w1 w5000",
    "8 words (deploy kafka w1 w2 w3 w17 w999 w15000)": "deploy kafka w1 w2 w3 w17 w999 w15000",
    "only in the oldest half (oldhat)": "oldhat",
}


async def run(url: str, turns: int, rounds: int, plans: bool) -> None:
    memory = await PostgresMemory.open(url)
    try:
        started = time.perf_counter()
        await memory._pool.execute(FILL.format(
            ch="BIG", n=turns,
            extra=f"CASE WHEN g % 2 = 0 THEN 'deploy' END, CASE WHEN g = 1 THEN 'zookeeper quorum' END, "
                  f"CASE WHEN g <= {turns // 2} THEN 'oldhat' END"))
        await memory._pool.execute(FILL.format(ch="OTHER", n=turns, extra="'kafka'"))
        await memory._pool.execute("VACUUM ANALYZE")
        print(f"{2 * turns:,} turns in two channels, generated in {time.perf_counter() - started:.1f} s; "
              f"WINDOW={WINDOW}, PER_TERM={PER_TERM}\n")
        async with memory._pool.acquire() as con:
            for mode in ("force_custom_plan", "force_generic_plan"):  # the cached plan is as good
                await con.execute(f"SET plan_cache_mode = {mode}")
                for name, query in QUERIES.items():
                    explain = await con.prepare("EXPLAIN (ANALYZE, BUFFERS) " + RECALL)
                    plan = [r[0] for r in await explain.fetch(
                        "slack", "T", "BIG", None, PER_TERM, 5, fts_terms(query), WINDOW)]
                    scans = sorted({m.group(1) for line in plan
                                    if (m := re.search(r"((?:Bitmap Index|Bitmap Heap|Index|Seq) Scan\S* (?:using|on) \w+)", line))
                                    and "never executed" not in line})
                    print(f"EXPLAIN ({mode[6:]}) {name}: {plan[-1].split(': ')[1]}  [{'; '.join(scans)}]")
                    if plans:
                        print("\n".join(plan) + "\n")
            await con.execute("RESET plan_cache_mode")
        print()
        for name, query in QUERIES.items():
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                found = await memory.recall("slack", "T", "BIG", query)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"recall() {name}: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms, "
                  f"{len(found)} found")
    finally:
        await memory.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--plans", action="store_true", help="print each plan in full")
    args = parser.parse_args()
    server = start_server()
    try:
        asyncio.run(run(server.create_database(), args.turns, args.rounds, args.plans))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
