"""Scheduled jobs' runs: which job ran for which due time, and how it ended.

The claim is the whole guarantee: `claim_run` inserts the (job, due) row or does nothing, so of
two schedulers on one file (a restart, a second replica) exactly one runs a given due time.
Scheduling itself (when things are due) is `bot.scheduler`'s business, not the memory's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.memory.connection import MemoryConnection
from engine.memory.schema import _dt, _ts


@dataclass(frozen=True)
class JobRun:
    job: str
    due: datetime
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None  # None: running, or interrupted by a crash
    detail: str | None


class JobRunStore(MemoryConnection):
    """The `job_runs` table."""

    async def claim_run(self, job: str, due: datetime, started_at: datetime) -> bool:
        """True if this caller now owns (job, due) and should run it; False if someone already did."""
        rows = await self._write(
            "INSERT INTO job_runs (job, due, started_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING job",
            (job, _ts(due), _ts(started_at)),
        )
        return bool(rows)

    async def finish_run(self, job: str, due: datetime, outcome: str, detail: str, finished_at: datetime) -> None:
        await self._write(
            "UPDATE job_runs SET outcome = ?, detail = ?, finished_at = ? WHERE job = ? AND due = ?",
            (outcome, detail, _ts(finished_at), job, _ts(due)),
        )

    async def skip_run(self, job: str, due: datetime, detail: str, at: datetime) -> bool:
        """Record a due time that will not run (missed past its grace); False if already recorded."""
        rows = await self._write(
            """INSERT INTO job_runs (job, due, started_at, finished_at, outcome, detail)
               VALUES (?, ?, ?, ?, 'skipped', ?) ON CONFLICT DO NOTHING RETURNING job""",
            (job, _ts(due), _ts(at), _ts(at), detail),
        )
        return bool(rows)

    async def last_runs(self) -> dict[str, JobRun]:
        """Each job's most recent run (by due time)."""
        rows = await self._rows(
            """SELECT job, due, started_at, finished_at, outcome, detail FROM job_runs AS r
               WHERE due = (SELECT max(due) FROM job_runs WHERE job = r.job)"""
        )
        return {
            job: JobRun(job, _dt(due), _dt(started), _dt(finished) if finished else None, outcome, detail)
            for job, due, started, finished, outcome, detail in rows
        }

    async def job_runs(self, job: str) -> list[JobRun]:
        """Every recorded run of `job`, oldest due time first."""
        rows = await self._rows(
            "SELECT job, due, started_at, finished_at, outcome, detail FROM job_runs WHERE job = ? ORDER BY due",
            (job,),
        )
        return [JobRun(j, _dt(d), _dt(s), _dt(f) if f else None, o, x) for j, d, s, f, o, x in rows]
