"""PostgreSQL: the part of the memory that `engine.memory.jobs` is for SQLite (JobRunStore).

The claim is the whole guarantee, across replicas too: `claim_run` inserts the (job, due) row or
does nothing (the primary key, `ON CONFLICT DO NOTHING`), never a check-then-insert, so of any
number of schedulers on one database exactly one runs a given due time.
"""

from __future__ import annotations

from datetime import datetime

from engine.memory.jobs import JobRun
from engine.memory.pg.connection import PgConnection
from engine.memory.schema import _dt, _ts

_COLS = "job, due, started_at, finished_at, outcome, detail"


def _line(text: str) -> str:
    """PostgreSQL's text cannot hold NUL: a failure's reason that carries one is kept with U+FFFD
    in its place (SQLite keeps it as it is), rather than losing the run's record."""
    return text.replace("\x00", "\ufffd")


def _run(row) -> JobRun:
    job, due, started, finished, outcome, detail = row
    return JobRun(job, _dt(due), _dt(started), _dt(finished) if finished else None, outcome, detail)


class PgJobRunStore(PgConnection):
    """The `job_runs` table."""

    async def claim_run(self, job: str, due: datetime, started_at: datetime) -> bool:
        """True if this caller now owns (job, due) and should run it; False if someone already did."""
        rows = await self._write(
            "INSERT INTO job_runs (job, due, started_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING job",
            job, _ts(due), _ts(started_at),
        )
        return bool(rows)

    async def finish_run(self, job: str, due: datetime, outcome: str, detail: str, finished_at: datetime) -> None:
        await self._write(
            "UPDATE job_runs SET outcome = $1, detail = $2, finished_at = $3 WHERE job = $4 AND due = $5",
            outcome, _line(detail), _ts(finished_at), job, _ts(due),
        )

    async def skip_run(self, job: str, due: datetime, detail: str, at: datetime) -> bool:
        """Record a due time that will not run (missed past its grace); False if already recorded."""
        rows = await self._write(
            """INSERT INTO job_runs (job, due, started_at, finished_at, outcome, detail)
               VALUES ($1, $2, $3, $3, 'skipped', $4) ON CONFLICT DO NOTHING RETURNING job""",
            job, _ts(due), _ts(at), _line(detail),
        )
        return bool(rows)

    async def last_runs(self) -> dict[str, JobRun]:
        """Each job's most recent run (by due time)."""
        rows = await self._rows(f"SELECT DISTINCT ON (job) {_COLS} FROM job_runs ORDER BY job, due DESC")
        return {row[0]: _run(row) for row in rows}

    async def job_runs(self, job: str) -> list[JobRun]:
        """Every recorded run of `job`, oldest due time first."""
        rows = await self._rows(f"SELECT {_COLS} FROM job_runs WHERE job = $1 ORDER BY due", job)
        return [_run(r) for r in rows]
