"""Scheduled jobs: APScheduler wakes us up; our SQLite record decides what runs.

Why it is split this way:

- APScheduler 3.11's `AsyncIOScheduler` (in-memory job store: nothing is pickled) is only the
  timer in the bot's event loop. Its memory is gone after a restart, so it cannot know what ran.
- What ran for which due time is the `job_runs` table (`engine.memory.jobs`). Before a job runs
  for a due time, the (job, due) row is claimed; a second claim does nothing, so a restart or a
  second replica on the same file never runs a due time twice. Interval triggers are anchored to
  a fixed instant (`ANCHOR`), so every process computes the same due times.
- Missed runs are coalesced: only the latest due time that has passed counts. If it is no older
  than the job's grace (`Job.grace`: the digest 1 h, the others their interval) it runs once,
  late; older, it is recorded "skipped (missed by Xh)" and the next one is awaited.
- The clock is injected (`Clock`): tests call `run_due(now)` / `run_now(name, now)` and never sleep.
- A job that raises is logged with its reason and recorded "failed"; the others run, and it is
  tried again at its next due time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.memory.jobs import JobRun
    from engine.memory.port import Memory

log = logging.getLogger(__name__)

#: Interval jobs fire at ANCHOR + k * interval: the same instants in every process.
ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)
DIGEST_GRACE = timedelta(hours=1)
_TICK = timedelta(microseconds=1)
TIMER_SLACK = timedelta(seconds=1)


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware datetime in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class Job:
    """`run(now)` does the work and returns a one-line outcome ("2 nudges sent", "nothing to do").

    `trigger` is an APScheduler trigger (IntervalTrigger with start_date=ANCHOR, CronTrigger, ...);
    `grace`: how late a missed run may still run (default: the interval, or DIGEST_GRACE)."""

    name: str
    trigger: Any
    run: Callable[[datetime], Awaitable[str]]
    grace: timedelta | None = None
    schedule: str = ""  # how people read the trigger ("every 5m", "daily at 09:00 Europe/Paris")

    @property
    def misfire_grace(self) -> timedelta:
        if self.grace is not None:
            return self.grace
        interval = getattr(self.trigger, "interval", None)
        return interval if isinstance(interval, timedelta) else DIGEST_GRACE


@dataclass(frozen=True)
class RunResult:
    job: str
    due: datetime
    outcome: str  # "ok", "failed", "skipped", "already" (claimed elsewhere)
    detail: str


@dataclass(frozen=True)
class JobStatus:
    name: str
    schedule: str
    last: JobRun | None
    next_due: datetime | None


def latest_due(trigger: Any, now: datetime) -> datetime | None:
    """The trigger's last fire time at or before `now` (UTC), or None.

    Triggers only answer "the first fire time at or after t", so look back from `now`, doubling
    the window until it holds one, then walk forward to the last one not after `now`."""
    span = timedelta(minutes=1)
    while span <= timedelta(days=800):
        fire = trigger.get_next_fire_time(None, now - span)
        if fire is not None and fire <= now:
            while (after := trigger.get_next_fire_time(None, fire + _TICK)) is not None and after <= now:
                fire = after
            return fire.astimezone(UTC)
        span *= 2
    return None


def next_due(trigger: Any, now: datetime) -> datetime | None:
    fire = trigger.get_next_fire_time(None, now + _TICK)
    return fire.astimezone(UTC) if fire is not None else None


def describe_lateness(late: timedelta) -> str:
    minutes = int(late.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes}m"
    hours = minutes / 60
    return f"{hours:.0f}h" if hours < 48 else f"{hours / 24:.0f}d"


def one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


#: A programming error's message names our internals, not something an operator can act on.
_INTERNAL = (AttributeError, TypeError, NameError, ImportError, KeyError, IndexError, AssertionError)


def failure_reason(e: Exception) -> str:
    """The failure in one line for the log and `orchestra jobs`: the error's own words when they
    are meant for people, else a pointer to the debug log (never a class name or traceback)."""
    text = one_line(str(e))
    if isinstance(e, _INTERNAL) or not text:
        return "an internal error (ORCHESTRA_LOG_LEVEL=DEBUG shows where)"
    return text


class UnknownJob(LookupError):
    pass


class Scheduler:
    """The jobs, their record in `memory`, and (once `start`ed) the APScheduler timer."""

    def __init__(self, memory: Memory, jobs: list[Job], clock: Clock | None = None):
        self.memory = memory
        self.jobs = {job.name: job for job in jobs}
        self.clock = clock or SystemClock()
        self._aps: Any = None
        self._running: set[asyncio.Task] = set()

    # -- what tests and the CLI call -------------------------------------------------------------

    async def run_due(self, now: datetime | None = None) -> list[RunResult]:
        """Run every job whose latest due time (at or before `now`) has not been claimed yet."""
        now = now or self.clock.now()
        results = []
        for job in self.jobs.values():
            result = await self._run_if_due(job, now)
            if result is not None:
                results.append(result)
        return results

    async def run_now(self, name: str, now: datetime | None = None) -> RunResult:
        """Run one job now, whatever its schedule (recorded with `now` as its due time)."""
        job = self.jobs.get(name)
        if job is None:
            raise UnknownJob(name)
        now = now or self.clock.now()
        if not await self.memory.claim_run(job.name, now, now):
            return RunResult(job.name, now, "already", "already running for this instant")
        return await self._run_claimed(job, now)

    async def status(self, now: datetime | None = None) -> list[JobStatus]:
        now = now or self.clock.now()
        last = await self.memory.last_runs()
        return [JobStatus(j.name, j.schedule, last.get(j.name), next_due(j.trigger, now)) for j in self.jobs.values()]

    # -- the bookkeeping -------------------------------------------------------------------------

    async def _run_if_due(self, job: Job, now: datetime) -> RunResult | None:
        due = latest_due(job.trigger, now)
        if due is None:
            return None
        late = now - due
        if late > job.misfire_grace:
            detail = f"skipped (missed by {describe_lateness(late)})"
            if await self.memory.skip_run(job.name, due, detail, now):
                log.info("job %s: the run due at %s was missed by more than its grace: %s",
                            job.name, due.isoformat(timespec="minutes"), detail)
                return RunResult(job.name, due, "skipped", detail)
            return None
        if not await self.memory.claim_run(job.name, due, now):
            return None  # ran already (before a restart, or in another process)
        return await self._run_claimed(job, due)

    async def _run_claimed(self, job: Job, due: datetime) -> RunResult:
        task = asyncio.current_task()
        tracked = task is not None and task not in self._running  # the catch-up task is already
        if tracked:
            self._running.add(task)
        try:
            try:
                detail = one_line(await job.run(self.clock.now()) or "done")
                outcome = "ok"
                log.info("job %s (due %s): %s", job.name, due.isoformat(timespec="minutes"), detail)
            except Exception as e:  # one failing job never stops the others
                reason = failure_reason(e)
                detail, outcome = f"failed: {reason}", "failed"
                log.error("job %s (due %s) failed: %s; it runs again at its next due time",
                          job.name, due.isoformat(timespec="minutes"), reason)
                log.debug("job %s failed", job.name, exc_info=True)
            await self.memory.finish_run(job.name, due, outcome, detail, self.clock.now())
            return RunResult(job.name, due, outcome, detail)
        finally:
            if tracked:
                self._running.discard(task)

    # -- the live timer --------------------------------------------------------------------------

    def start(self) -> None:
        """In the running loop: catch up on what was missed while down, then let APScheduler wake
        each job at its due times (coalesced, within its grace, one instance at a time)."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._aps = AsyncIOScheduler(timezone=UTC)
        for job in self.jobs.values():
            self._aps.add_job(
                self._tick, job.trigger, args=[job.name], id=job.name, name=job.name,
                coalesce=True, max_instances=1,
                misfire_grace_time=max(1, int(job.misfire_grace.total_seconds())),
            )
        self._aps.start()
        catch_up = asyncio.get_running_loop().create_task(self._catch_up(), name="jobs-catch-up")
        self._running.add(catch_up)
        catch_up.add_done_callback(self._running.discard)

    async def _catch_up(self) -> None:
        try:
            await self.run_due()
        except Exception as e:  # the memory failing under us: the timer goes on
            log.warning("catching up on scheduled jobs failed: %s", failure_reason(e))
            log.debug("catching up failed", exc_info=True)

    async def _tick(self, name: str) -> None:
        """APScheduler's wake-up for a due time. Loop timers may fire a hair early: looking
        `TIMER_SLACK` ahead keeps that due time from being taken for the previous one (and
        then never run)."""
        try:
            await self._run_if_due(self.jobs[name], self.clock.now() + TIMER_SLACK)
        except Exception as e:  # the bookkeeping itself failed (memory): next time
            log.warning("job %s could not be run: %s", name, failure_reason(e))
            log.debug("job %s could not be run", name, exc_info=True)

    async def stop(self, grace: float | None = 5.0) -> None:
        """No new runs; running ones get `grace` seconds, then are cancelled (their due time
        stays claimed: it is not run twice)."""
        if self._aps is not None and self._aps.running:
            self._aps.pause()
        running = {t for t in self._running if t is not asyncio.current_task()}
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        self._aps = None
