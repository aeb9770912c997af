"""The bot's scheduled jobs, built from the settings around the engine's job functions.

Each job is a thin wrapper: the work is the engine's (`engine.jobs`: it posts through the
engine's Poster like any reply, with keys so a restart never posts twice); here are only the
schedule, the grace for missed runs (see `bot.scheduler`) and the one-line outcome.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.job_settings import format_duration
from bot.scheduler import ANCHOR, DIGEST_GRACE, Job

if TYPE_CHECKING:
    from bot.bootstrap import App

#: How often waiting investigations are looked at: the nudge threshold, but at least every 5 min.
NUDGE_CHECK_EVERY = timedelta(minutes=5)


def _every(interval: timedelta):
    from apscheduler.triggers.interval import IntervalTrigger

    return IntervalTrigger(seconds=int(interval.total_seconds()), start_date=ANCHOR)


def _count(n: int, one: str, many: str) -> str:
    return "nothing to do" if not n else f"{n} {one if n == 1 else many}"


def build_jobs(app: App) -> list[Job]:
    """The jobs these settings ask for: persona refresh, nudges, retention, and the digest when
    ORCHESTRA_DIGEST_AT is set. The engine's functions are imported when a job runs."""
    settings, engine = app.settings, app.engine

    async def refresh_personas(now: datetime) -> str:
        live = app.live_personas  # Notion or the personas file; None: the shipped personas
        if live is None:
            return "the shipped personas: nothing to refresh (set ORCHESTRA_PERSONAS or Notion to edit them)"
        if await live.refresh():
            return "personas reloaded from their source"
        return "the persona source did not answer; the current personas stay"

    async def nudge_waiting(now: datetime) -> str:
        from engine import jobs

        return _count(await jobs.nudge_waiting(engine, now, settings.nudge_after), "nudge sent", "nudges sent")

    async def send_digests(now: datetime) -> str:
        from engine import jobs

        tz = settings.digest_at.tz if settings.digest_at else None  # the key's date is the local one
        sent = await jobs.send_digests(engine, now, list(settings.digest_channels), tz=tz)
        return _count(sent, "digest sent", "digests sent")

    async def prune_memory(now: datetime) -> str:
        from engine import jobs

        pruned = await jobs.prune_memory(app.memory, now, settings.retention_days)
        if not pruned:
            return "nothing to do"
        return f"{_count(pruned, 'record pruned', 'records pruned')}; {jobs.expire_caches(engine)}"

    check_every = min(settings.nudge_after, NUDGE_CHECK_EVERY)
    job_list = [
        Job("refresh-personas", _every(settings.personas_refresh), refresh_personas,
            schedule=f"every {format_duration(settings.personas_refresh)}"),
        Job("nudge-waiting", _every(check_every), nudge_waiting,
            schedule=f"every {format_duration(check_every)} (nudge after {format_duration(settings.nudge_after)})"),
    ]
    if settings.digest_at is not None:
        from apscheduler.triggers.cron import CronTrigger

        at = settings.digest_at
        job_list.append(Job(
            "digest", CronTrigger(hour=at.hour, minute=at.minute, timezone=at.tz), send_digests, grace=DIGEST_GRACE,
            schedule=f"daily at {at} to {', '.join(_channel_name(c) for c in settings.digest_channels)}",
        ))
    if settings.retention_days:
        job_list.append(Job("prune-memory", _every(timedelta(days=1)), prune_memory,
                            schedule=f"daily (keep {settings.retention_days} days)"))
    return job_list


def _channel_name(channel: tuple[str, str | None, str]) -> str:
    platform, workspace, name = channel
    return f"{platform}:{workspace + '/' if workspace and platform != 'local' else ''}{name}"
