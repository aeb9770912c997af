"""How memory costs grow with a channel's history: recall and per-turn writes at 0/10k/100k turns.

    /work/venv/bin/python benchmarks/bench_memory.py [--turns 0,10000] [--rounds N]

For each size a fresh temporary database gets that many turns in ONE channel (seeded with
executemany in one transaction, through the store's own triggers), then each round times what
the engine does around one persona turn:

    recall        recall(channel, question, exclude_thread=<the current thread>)
    writes        add_turn + record_post + set_task_status + update_thread
    turn          both together (the engine's per-turn memory overhead)

Texts come from a Zipf-distributed vocabulary, so the common query words match a large share of
the 100k turns (the case where letting FTS5 rank every match would be slow). Also printed: a
burst of 200 concurrent accept_task calls (group commit).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from itertools import accumulate
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.memory import SQLiteMemory, TaskStatus, ThreadRecord, TurnRecord, TurnRole
from engine.memory.schema import INSERT_TURN, _ts, turn_params
from engine.models import Task, utcnow

PLACE = ("slack", "T01", "C01")
VOCAB = [f"{a}{b}" for a in ("lat", "cache", "deploy", "query", "index", "shard", "queue", "token",
                             "plan", "risk", "metric", "churn", "signup", "funnel", "budget",
                             "vendor", "schema", "lock", "retry", "alert")
         for b in ("", "s", "ing", "er", "ed", "ion", "al", "ic", "ure", "ity", "ness", "ment",
                   "ful", "ist", "ize", "ward", "ship", "hood", "dom", "let", "ish", "ous",
                   "ive", "less", "able", "ency", "ite", "oid", "eme", "ola", "ux", "ax",
                   "ix", "ox", "um", "ia", "ea", "ae", "io", "ol", "ir", "ur", "an", "en", "on",
                   "ar", "or", "el", "il", "yl")]
WEIGHTS = list(accumulate(1 / (i + 1) for i in range(len(VOCAB))))  # Zipf


def make_texts(rng: random.Random, n: int) -> list[str]:
    """n texts of 40..120 words, cheaply: sentences drawn from a pool of Zipf sentences."""
    pool = [" ".join(rng.choices(VOCAB, cum_weights=WEIGHTS, k=rng.randint(8, 20))) + "."
            for _ in range(3000)]
    return [" ".join(rng.choices(pool, k=rng.randint(3, 7))) for _ in range(n)]


def seed(path: Path, n_turns: int, rng: random.Random) -> None:
    """n_turns persona turns in 100-turn threads of one channel, in one transaction."""
    db = sqlite3.connect(path)
    chan = db.execute(
        "INSERT INTO channels (platform, workspace, channel) VALUES (?, ?, ?) "
        "ON CONFLICT DO UPDATE SET docs = docs RETURNING id", PLACE).fetchone()[0]
    now = _ts(utcnow())
    n_threads = (n_turns + 99) // 100
    db.executemany(
        "INSERT INTO threads (id, chan, kind, platform, workspace, channel, thread, title, "
        "inv_type, phase, status, lead, turn_count, created_at, updated_at) "
        "VALUES (?, ?, 'investigation', ?, ?, ?, ?, ?, 'general', 'complete', 'complete', "
        "'sophia', 100, ?, ?)",
        ((f"seed-{i}", chan, *PLACE, f"17000.{i}", f"question {i}", now, now)
         for i in range(n_threads)),
    )
    texts = make_texts(rng, n_turns)
    # RETURNING rows are not wanted here (executemany refuses them)
    insert = INSERT_TURN.replace("RETURNING id, seq", "")
    db.executemany(insert, (
        turn_params(TurnRecord(thread_id=f"seed-{i // 100}", role=TurnRole.PERSONA,
                               author="sophia", mode="researcher", text=t))
        for i, t in enumerate(texts)))
    db.commit()
    db.close()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] * 1000


async def measure(n_turns: int, rounds: int) -> dict[str, list[float]]:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "memory.db"
        await (await SQLiteMemory.open(path)).close()  # schema
        t0 = time.perf_counter()
        seed(path, n_turns, rng)
        seeded = time.perf_counter() - t0
        mem = await SQLiteMemory.open(path)
        conv = await mem.create_thread(ThreadRecord(
            id="conv-bench", kind="conversation", platform=PLACE[0], workspace=PLACE[1],
            channel=PLACE[2], thread="18000.1", title="bench"))
        questions = [" ".join(rng.choices(VOCAB, cum_weights=WEIGHTS, k=rng.randint(3, 8)))
                     + "?" for _ in range(rounds)]
        answers = make_texts(rng, rounds)
        times: dict[str, list[float]] = {"recall": [], "writes": [], "turn": []}
        hits = 0
        for i in range(rounds + 20):  # the first 20 warm up
            j = i % rounds
            if i and i % 10 == 0:  # a new conversation every 10 turns, as in a real channel
                conv = await mem.create_thread(conv.model_copy(
                    update={"id": f"conv-bench-{i}", "thread": f"18000.{i}.0", "turn_count": 0}))
            task = Task(platform=PLACE[0], workspace=PLACE[1], channel=PLACE[2],
                        thread="18000.1", user="U1", text=questions[j], event_id=f"ev-{i}")
            acc = await mem.accept_task(task)
            t0 = time.perf_counter()
            found = await mem.recall(*PLACE, questions[j], exclude_thread=conv.id)
            t1 = time.perf_counter()
            await mem.add_turn(TurnRecord(thread_id=conv.id, task_id=acc.task_id, step=0,
                                          role=TurnRole.PERSONA, author="sophia",
                                          mode="conversation", text=answers[j]))
            await mem.record_post(f"{acc.task_id}:0", task_id=acc.task_id, platform=PLACE[0],
                                  workspace=PLACE[1], channel=PLACE[2], thread="18000.1",
                                  message_id=f"18000.{i + 2}", persona="sophia",
                                  thread_id=conv.id)
            await mem.set_task_status(acc.task_id, TaskStatus.DONE)
            conv = await mem.update_thread(conv.model_copy(update={"turn_count": i + 1}))
            t2 = time.perf_counter()
            if i >= 20:
                hits += bool(found)
                times["recall"].append(t1 - t0)
                times["writes"].append(t2 - t1)
                times["turn"].append(t2 - t0)
        burst = [Task(platform=PLACE[0], workspace=PLACE[1], channel=PLACE[2], user="U1",
                      text="hi", event_id=f"burst-{k % 180}") for k in range(200)]
        t0 = time.perf_counter()
        await asyncio.gather(*(mem.accept_task(t) for t in burst))
        times["burst200"] = [time.perf_counter() - t0]
        await mem.close()
        size = path.stat().st_size / 1e6
    print(f"  seeded {n_turns:>7,} turns in {seeded:5.1f} s (db {size:6.1f} MB); "
          f"recall found something in {hits}/{rounds} rounds")
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", default="0,10000,100000")
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    sizes = [int(s) for s in args.turns.split(",")]
    results = {}
    for n in sizes:
        results[n] = await measure(n, args.rounds)
    print(f"\n{'turns stored':>12} | {'recall p50':>10} {'p99':>7} | {'writes p50':>10} {'p99':>7}"
          f" | {'turn p50':>8} {'p99':>7} | {'200 accepts':>11}   (ms)")
    for n, t in results.items():
        print(f"{n:>12,} | {pct(t['recall'], 50):10.2f} {pct(t['recall'], 99):7.2f} | "
              f"{pct(t['writes'], 50):10.2f} {pct(t['writes'], 99):7.2f} | "
              f"{pct(t['turn'], 50):8.2f} {pct(t['turn'], 99):7.2f} | "
              f"{t['burst200'][0] * 1000:11.1f}")
    base = statistics.median(results[sizes[0]]["turn"])
    for n in sizes[1:]:
        print(f"turn p50 with {n:,} / with {sizes[0]:,}: "
              f"{statistics.median(results[n]['turn']) / base:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
