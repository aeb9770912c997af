"""The scheduler's bookkeeping, with a fake clock and a real memory: never sleeps.

The tests of what the memory keeps (each due time claimed once, the runs' record) run on both
backends (`memory_db`: a SQLite file, a PostgreSQL database); those of the scheduler's own loop
and of SQLite's migrations on a SQLite file."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.scheduler import ANCHOR, Job, Scheduler, latest_due
from engine.memory.open import open_memory
from engine.memory.store import SQLiteMemory
from tests.memory_backends import memory_db, pg_server  # noqa: F401 - fixtures

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime):
        self.current = now

    def now(self) -> datetime:
        return self.current


class Recorder:
    """A job body that remembers each call; raises while `failing` is set."""

    def __init__(self, failing: str | None = None):
        self.calls: list[datetime] = []
        self.failing = failing

    async def __call__(self, now: datetime) -> str:
        self.calls.append(now)
        if self.failing:
            raise RuntimeError(self.failing)
        return f"run {len(self.calls)}"


def hourly(name: str, body: Recorder) -> Job:
    return Job(name, IntervalTrigger(hours=1, start_date=ANCHOR), body, schedule="every 1h")


def daily_digest(body: Recorder, at: str = "09:00", tz: str = "Europe/Paris") -> Job:
    hour, minute = map(int, at.split(":"))
    return Job("digest", CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(tz)), body,
               grace=timedelta(hours=1), schedule=f"daily at {at} {tz}")


async def test_a_due_time_runs_once_and_not_again_after_a_restart(memory_db):
    db = memory_db
    body = Recorder()
    memory = await open_memory(db)
    try:
        scheduler = Scheduler(memory, [hourly("tick", body)], FakeClock(T0))
        first = await scheduler.run_due(T0 + timedelta(minutes=1))
        again = await scheduler.run_due(T0 + timedelta(minutes=30))
    finally:
        await memory.close()
    assert [(r.job, r.due, r.outcome, r.detail) for r in first] == [("tick", T0, "ok", "run 1")]
    assert again == [] and len(body.calls) == 1

    memory = await open_memory(db)  # a restart on the same file
    try:
        scheduler = Scheduler(memory, [hourly("tick", body)], FakeClock(T0))
        assert await scheduler.run_due(T0 + timedelta(minutes=45)) == []
        later = await scheduler.run_due(T0 + timedelta(hours=1, seconds=5))
        runs = await memory.job_runs("tick")
    finally:
        await memory.close()
    assert [r.due for r in later] == [T0 + timedelta(hours=1)]
    assert len(body.calls) == 2
    assert [(r.due, r.outcome) for r in runs] == [(T0, "ok"), (T0 + timedelta(hours=1), "ok")]


async def test_two_schedulers_on_one_file_run_a_due_time_once(memory_db):
    db = memory_db
    body = Recorder()
    one, two = await open_memory(db), await open_memory(db)
    try:
        a = Scheduler(one, [hourly("tick", body)], FakeClock(T0))
        b = Scheduler(two, [hourly("tick", body)], FakeClock(T0))
        import asyncio

        results = await asyncio.gather(a.run_due(T0 + timedelta(seconds=2)), b.run_due(T0 + timedelta(seconds=3)))
    finally:
        await one.close()
        await two.close()
    assert len(body.calls) == 1
    assert sorted(len(r) for r in results) == [0, 1]


async def test_a_missed_digest_runs_once_late_within_its_grace(memory_db):
    body = Recorder()
    memory = await open_memory(memory_db)
    try:
        scheduler = Scheduler(memory, [daily_digest(body)], FakeClock(T0))
        # 09:00 in Paris is 08:00 UTC; the bot comes back at 08:40 UTC
        late = await scheduler.run_due(datetime(2026, 11, 23, 8, 40, tzinfo=UTC))
        again = await scheduler.run_due(datetime(2026, 11, 23, 8, 50, tzinfo=UTC))
    finally:
        await memory.close()
    assert [(r.due, r.outcome) for r in late] == [(datetime(2026, 11, 23, 8, 0, tzinfo=UTC), "ok")]
    assert again == [] and len(body.calls) == 1


async def test_a_digest_missed_past_its_grace_is_recorded_skipped(memory_db, caplog):
    body = Recorder()
    memory = await open_memory(memory_db)
    try:
        scheduler = Scheduler(memory, [daily_digest(body)], FakeClock(T0))
        with caplog.at_level(logging.INFO, logger="bot.scheduler"):
            skipped = await scheduler.run_due(datetime(2026, 11, 23, 11, 0, tzinfo=UTC))  # 3 h late
            assert await scheduler.run_due(datetime(2026, 11, 23, 11, 5, tzinfo=UTC)) == []
        tomorrow = await scheduler.run_due(datetime(2026, 11, 24, 8, 0, 30, tzinfo=UTC))
        last = (await memory.last_runs())["digest"]
    finally:
        await memory.close()
    assert [(r.outcome, r.detail) for r in skipped] == [("skipped", "skipped (missed by 3h)")]
    assert "missed" in caplog.text
    assert [r.outcome for r in tomorrow] == ["ok"] and len(body.calls) == 1
    assert last.outcome == "ok" and last.due == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


async def test_runs_missed_while_down_are_coalesced_into_one(memory_db):
    body = Recorder()
    memory = await open_memory(memory_db)
    try:
        scheduler = Scheduler(memory, [hourly("tick", body)], FakeClock(T0))
        await scheduler.run_due(T0)
        results = await scheduler.run_due(T0 + timedelta(hours=5, minutes=10))  # four missed
    finally:
        await memory.close()
    assert [(r.due, r.outcome) for r in results] == [(T0 + timedelta(hours=5), "ok")]
    assert len(body.calls) == 2


async def test_a_raising_job_is_logged_recorded_failed_retried_and_the_others_run(memory_db, caplog):
    broken, fine = Recorder(failing="the channel list is gone"), Recorder()
    memory = await open_memory(memory_db)
    try:
        scheduler = Scheduler(memory, [hourly("broken", broken), hourly("fine", fine)], FakeClock(T0))
        with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
            first = await scheduler.run_due(T0 + timedelta(seconds=1))
        broken.failing = None
        second = await scheduler.run_due(T0 + timedelta(hours=1, seconds=1))
        last = await memory.last_runs()
        history = await memory.job_runs("broken")
    finally:
        await memory.close()
    assert {(r.job, r.outcome) for r in first} == {("broken", "failed"), ("fine", "ok")}
    assert "broken" in caplog.text and "the channel list is gone" in caplog.text
    assert (history[0].outcome, history[0].detail) == ("failed", "failed: the channel list is gone")
    assert {(r.job, r.outcome) for r in second} == {("broken", "ok"), ("fine", "ok")}
    assert last["broken"].outcome == "ok" and len(broken.calls) == 2 and len(fine.calls) == 2


async def test_a_failure_whose_reason_carries_a_nul_is_recorded_and_the_next_due_time_runs(memory_db):
    broken = Recorder(failing="bad\x00byte from a platform")
    memory = await open_memory(memory_db)
    try:
        scheduler = Scheduler(memory, [hourly("broken", broken)], FakeClock(T0))
        [first] = await scheduler.run_due(T0 + timedelta(seconds=1))
        broken.failing = None
        [second] = await scheduler.run_due(T0 + timedelta(hours=1, seconds=1))
        history = await memory.job_runs("broken")
    finally:
        await memory.close()
    assert first.outcome == "failed" and second.outcome == "ok"
    assert [r.outcome for r in history] == ["failed", "ok"]
    assert history[0].detail.startswith("failed: bad") and history[0].detail.endswith("byte from a platform")

async def test_run_now_runs_one_job_and_records_it(memory_db):
    body, other = Recorder(), Recorder()
    memory = await open_memory(memory_db)
    try:
        scheduler = Scheduler(memory, [daily_digest(body), hourly("tick", other)], FakeClock(T0))
        result = await scheduler.run_now("digest", T0 + timedelta(minutes=7))
        status = {s.name: s for s in await scheduler.status(T0 + timedelta(minutes=8))}
    finally:
        await memory.close()
    assert (result.outcome, result.detail) == ("ok", "run 1") and other.calls == []
    assert status["digest"].last.detail == "run 1"
    assert status["digest"].next_due == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert status["tick"].last is None and status["tick"].next_due == T0 + timedelta(hours=1)


def test_latest_due_follows_the_time_zone_across_daylight_saving():
    trigger = CronTrigger(hour=9, minute=0, timezone=ZoneInfo("Europe/Paris"))
    assert latest_due(trigger, datetime(2026, 7, 1, 12, tzinfo=UTC)) == datetime(2026, 7, 1, 7, tzinfo=UTC)
    assert latest_due(trigger, datetime(2026, 12, 1, 12, tzinfo=UTC)) == datetime(2026, 12, 1, 8, tzinfo=UTC)


async def test_a_version_4_memory_gains_job_runs(tmp_path):
    """A database the previous Orchestra wrote (version 4: persona tables) opens, and can record
    job runs."""
    from engine.memory.schema import MIGRATIONS, SCHEMA_V1

    db = tmp_path / "memory.db"
    con = sqlite3.connect(db)
    con.executescript(SCHEMA_V1 + MIGRATIONS[2] + MIGRATIONS[3] + MIGRATIONS[4] + "PRAGMA user_version = 4;")
    con.close()
    memory = await SQLiteMemory.open(db)
    try:
        assert await memory.claim_run("tick", T0, T0)
        assert not await memory.claim_run("tick", T0, T0)
    finally:
        await memory.close()


async def test_start_catches_up_in_the_loop_and_stop_lets_the_run_finish(tmp_path):
    import asyncio

    started, release = asyncio.Event(), asyncio.Event()
    calls: list[datetime] = []

    async def slow(now: datetime) -> str:
        calls.append(now)
        started.set()
        await release.wait()
        return "done slowly"

    memory = await SQLiteMemory.open(tmp_path / "memory.db")
    try:
        scheduler = Scheduler(memory, [hourly("slow", slow)], FakeClock(T0 + timedelta(minutes=2)))
        scheduler.start()
        await started.wait()
        asyncio.get_running_loop().call_soon(release.set)
        await scheduler.stop(grace=10)
        last = (await memory.last_runs())["slow"]
    finally:
        await memory.close()
    assert len(calls) == 1
    assert (last.due, last.outcome, last.detail) == (T0, "ok", "done slowly")


def test_job_settings_parse_durations_times_and_channels():
    import pytest

    from bot.job_settings import (
        format_duration,
        parse_channels,
        parse_daily_time,
        parse_duration,
    )

    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration(" 1h30m ") == timedelta(minutes=90)
    assert parse_duration("1D") == timedelta(days=1)
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    for bad in ("4", "4 hours", "-5m", "0s", ""):
        with pytest.raises(ValueError, match="e.g. 90s"):
            parse_duration(bad)
    assert str(parse_daily_time("9:05 America/New_York")) == "09:05 America/New_York"
    assert parse_daily_time("23:59").zone == "UTC"
    with pytest.raises(ValueError, match="time zone"):
        parse_daily_time("09:00 Europe/Pariss")
    with pytest.raises(ValueError, match="time zone"):
        parse_daily_time("09:00 ../../etc/passwd")
    assert parse_channels("slack:C1, #x ,discord:T9/42, local:#terminal,slack:C1".replace("#x ,", "")) == [
        ("slack", None, "C1"), ("discord", "T9", "42"), ("local", "local", "terminal"),
    ]
    with pytest.raises(ValueError, match="platform:channel"):
        parse_channels("general")


class GatedMemory(SQLiteMemory):
    """The real memory, holding the claim of one job until the test lets it go."""

    gated_job = "second"

    async def claim_run(self, job, due, started_at):
        if job == self.gated_job:
            self.claiming.set()
            await self.gate.wait()
        return await super().claim_run(job, due, started_at)


async def test_stop_waits_for_every_job_the_catch_up_runs(tmp_path):
    """The catch-up runs jobs one after another: stopping between two of them still waits."""
    import asyncio

    first, second = Recorder(), Recorder()
    memory = await GatedMemory.open(tmp_path / "memory.db")
    memory.claiming, memory.gate = asyncio.Event(), asyncio.Event()
    try:
        scheduler = Scheduler(memory, [hourly("first", first), hourly("second", second)], FakeClock(T0))
        scheduler.start()
        await memory.claiming.wait()  # the first has finished; the second is being claimed
        stopping = asyncio.ensure_future(scheduler.stop(grace=10))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not stopping.done()
        memory.gate.set()
        await stopping
        last = await memory.last_runs()
    finally:
        await memory.close()
    assert last["first"].outcome == "ok" and last["second"].outcome == "ok"


async def test_a_timer_that_wakes_a_hair_early_still_runs_its_due_time(memory_db):
    body = Recorder()
    memory = await open_memory(memory_db)
    try:
        clock = FakeClock(T0 - timedelta(milliseconds=3))
        scheduler = Scheduler(memory, [hourly("tick", body)], clock)
        await scheduler._tick("tick")  # what APScheduler calls at the due time
        runs = await memory.job_runs("tick")
    finally:
        await memory.close()
    assert [(r.due, r.outcome) for r in runs] == [(T0, "ok")]


async def test_two_memories_claiming_the_same_due_times_at_once_get_one_claim_each(memory_db):
    """Two replicas (two memories, two pools of connections) claim the same due times at the
    same moment: each (job, due) is won exactly once, by one of them, however they interleave."""
    import asyncio

    one, two = await open_memory(memory_db), await open_memory(memory_db)
    try:
        dues = [T0 + timedelta(hours=h) for h in range(40)]
        claims = await asyncio.gather(*(
            memory.claim_run("tick", due, due) for due in dues for memory in (one, two)
        ))
        skips = await asyncio.gather(*(memory.skip_run("late", T0, "missed", T0) for memory in (one, two)))
        runs = await one.job_runs("tick")
    finally:
        await one.close()
        await two.close()
    won = list(zip(claims[::2], claims[1::2], strict=True))
    assert all(a != b for a, b in won)  # one of the two, never both, never neither
    assert sorted(skips) == [False, True]
    assert [r.due for r in runs] == dues and all(r.outcome is None for r in runs)


_CLAIMER = """
import asyncio, json, sys
from datetime import datetime, timedelta
from engine.memory.open import open_memory

async def main(db, t0):
    memory = await open_memory(db)
    try:
        print("ready", flush=True)
        sys.stdin.readline()  # go: both processes claim at the same moment
        dues = [t0 + timedelta(hours=h) for h in range(30)]
        won = await asyncio.gather(*(memory.claim_run("tick", due, due) for due in dues))
        print(json.dumps([due.isoformat() for due, ok in zip(dues, won) if ok]), flush=True)
    finally:
        await memory.close()

asyncio.run(main(sys.argv[1], datetime.fromisoformat(sys.argv[2])))
"""


async def test_two_processes_claiming_the_same_due_times_run_each_once(pg_server):  # noqa: F811
    """Two real processes (two replicas) on one PostgreSQL database: every due time is claimed by
    exactly one. (On SQLite, two connections in one process show the same: see above.)"""
    memory_db = pg_server.create_database()
    import asyncio
    import json
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CLAIMER, str(memory_db), T0.isoformat(), env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.strip() == b"ready", (line, await proc.stderr.read())
        for proc in procs:
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        won = [json.loads(await asyncio.wait_for(proc.stdout.readline(), 60)) for proc in procs]
        assert [await asyncio.wait_for(proc.wait(), 60) for proc in procs] == [0, 0]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert not set(won[0]) & set(won[1])  # never both
    assert sorted(won[0] + won[1]) == sorted((T0 + timedelta(hours=h)).isoformat() for h in range(30))  # never neither
