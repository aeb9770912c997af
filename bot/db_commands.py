"""`orchestra db status` and `orchestra db migrate --to postgresql://...`: which memory is in use,
and moving a SQLite memory into PostgreSQL (the copy itself: `bot.db_migrate`).

Standard library only at import, like `bot.cli`. A database URL is never echoed: argparse's own
errors would print a bad value, so the URL is checked here, with our own words.
"""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2
EXIT_FAILED = 1


def add_parser(commands) -> None:
    db = commands.add_parser("db", help="the memory's database: status, migrate (SQLite → PostgreSQL)")
    actions = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("status", help="which memory ORCHESTRA_DB names, its schema version and row counts")
    migrate = actions.add_parser(
        "migrate", help="copy a SQLite memory into an empty PostgreSQL database, then compare the counts",
        description="Copy everything from the SQLite memory (ORCHESTRA_DB, or --from) into an empty "
                    "PostgreSQL database, table by table, then compare the row counts. Stop the bot first. "
                    "Keep the password out of the command line with PGPASSWORD or ~/.pgpass.")
    migrate.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host:5432/database (empty)")
    migrate.add_argument("--from", dest="source", metavar="PATH", help="the SQLite file (default: ORCHESTRA_DB)")


def cmd_db(args: argparse.Namespace) -> int:
    import asyncio

    from bot.cli import _settings

    if args.action == "migrate":
        from engine.memory.url import is_postgres_url

        if not is_postgres_url(args.to) or not args.to.strip().lower().startswith(("postgresql://", "postgres://")):
            print("orchestra db migrate: --to must be a PostgreSQL URL: postgresql://user:password@host:5432/database",
                  file=sys.stderr)
            return EXIT_USAGE
        settings = _settings()
        return asyncio.run(_migrate(settings, args))
    settings = _settings()
    return asyncio.run(_status(settings))


async def _migrate(settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.db_migrate import CountsDiffer, MigrationFailed, migrate
    from bot.memory_open import require_asyncpg
    from bot.setting_values import PostgresURL
    from engine.memory.url import safe_url

    require_asyncpg("--to")
    if args.source:
        source = Path(args.source).expanduser()
    elif isinstance(settings.db, PostgresURL):
        print("orchestra db migrate: ORCHESTRA_DB names a PostgreSQL database, not a SQLite file: "
              "give the SQLite file with --from PATH", file=sys.stderr)
        return EXIT_USAGE
    else:
        source = Path(settings.db)
    print(f"Copying {source} (SQLite) into {safe_url(args.to)} (PostgreSQL)", flush=True)
    try:
        report = await migrate(source, args.to.strip(), say=lambda line: print(line, flush=True),
                               source_setting="--from" if args.source else "ORCHESTRA_DB")
    except CountsDiffer as e:
        _print_counts(e.report)
        print(f"orchestra db migrate: {e}", file=sys.stderr)
        return EXIT_FAILED
    except MigrationFailed as e:
        print(f"orchestra db migrate: {e}", file=sys.stderr)
        return EXIT_FAILED
    _print_counts(report)
    print(f"\nDone: {report.rows:,} rows in {len(report.counts)} tables, the same on both sides.\n"
          f"Next: set ORCHESTRA_DB to the PostgreSQL URL on every replica, and start them.")
    return 0


def _print_counts(report) -> None:
    print(f"\n{'table':<16} {'SQLite':>9} {'PostgreSQL':>11}")
    for c in report.counts:
        print(f"{c.table:<16} {c.sqlite:>9,} {c.postgres:>11,}" + ("" if c.same else "   <- differs"))


async def _status(settings) -> int:
    from bot.db_status import memory_status
    from bot.memory_open import describe

    status = await memory_status(settings.db)
    print(f"Memory:   {describe(settings.db)}")
    if status.version is None:
        print("Schema:   none yet (it is created on the first start)")
        return 0
    print(f"Schema:   version {status.version}" + ("" if status.known else " (newer than this Orchestra: upgrade it)"))
    for table, n in status.counts:
        print(f"  {table:<16} {n:>9,}")
    return 0
