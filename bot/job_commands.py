"""`orchestra jobs` (each job: schedule, last run and its outcome, next run) and
`orchestra jobs run NAME` (run one now, through the same code as the schedule, recorded).

Its own module so `bot/cli.py` stays a thin parser; like it, only the standard library is
imported at module level (`orchestra --help` builds this parser).
"""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2
EXIT_FAILED = 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    jobs = commands.add_parser("jobs", help="the scheduled jobs: when they run and how they last ended; run one now")
    actions = jobs.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="each job: schedule, last run and outcome, next run (the default)")
    run = actions.add_parser("run", help="run one job now (recorded like a scheduled run)")
    run.add_argument("name", help="the job's name (`orchestra jobs` lists them)")


def cmd_jobs(args: argparse.Namespace) -> int:
    import asyncio

    from bot.logs import configure_logging
    from bot.settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    return asyncio.run(_run(settings, args) if args.action == "run" else _list(settings))


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


async def _list(settings) -> int:
    from bot.bootstrap import bootstrap, build_scheduler, offline_provider

    app = await bootstrap(settings, provider=offline_provider())  # no model is called here
    try:
        statuses = await build_scheduler(app).status()
    finally:
        await app.aclose()
    rows = [("JOB", "SCHEDULE", "LAST RUN", "OUTCOME", "NEXT RUN")]
    for s in statuses:
        outcome = "-" if s.last is None else (s.last.detail or "running (or interrupted)")
        rows.append((s.name, s.schedule, _when(s.last.due if s.last else None), outcome, _when(s.next_due)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    if settings.digest_at is None:
        print("(no digest: set ORCHESTRA_DIGEST_AT and ORCHESTRA_DIGEST_CHANNELS to send one)", file=sys.stderr)
    return 0


async def _run(settings, args: argparse.Namespace) -> int:
    from bot.bootstrap import bootstrap, build_scheduler
    from bot.platforms import build_platforms, verify_platforms
    from bot.scheduler import UnknownJob

    app = await bootstrap(settings)
    try:
        scheduler = build_scheduler(app)
        if args.name not in scheduler.jobs:
            hint = (" (the digest runs only when ORCHESTRA_DIGEST_AT and ORCHESTRA_DIGEST_CHANNELS are set)"
                    if args.name == "digest" else "")
            print(f"orchestra jobs run: no job named {args.name!r}{hint}; jobs: {', '.join(scheduler.jobs)}",
                  file=sys.stderr)
            return EXIT_USAGE
        platforms = build_platforms(app)  # jobs post through the platforms' outboxes
        await verify_platforms(platforms)
        try:
            result = await scheduler.run_now(args.name)
        except UnknownJob:  # pragma: no cover - checked above
            return EXIT_USAGE
        print(f"{result.job}: {result.detail}", flush=True)
        if result.outcome == "failed":
            print("(details are in the log; it also runs again at its next due time)", file=sys.stderr)
            return EXIT_FAILED
        return 0
    finally:
        await app.aclose()
