"""`orchestra personas init-notion` and `orchestra personas sync`: setting up and pulling the
Notion personas database. Standard library at import time (`orchestra --help` stays light); the
work is in `bot.bootstrap` and `adapters.notion`.
"""

from __future__ import annotations

import argparse
import sys

ACTIONS = ("init-notion", "sync")


def add_parsers(per_actions) -> None:
    init = per_actions.add_parser("init-notion", help="create the personas database in Notion, with the default personas")
    init.add_argument("--parent", required=True, metavar="PAGE",
                      help="the Notion page to create it under (its id or URL; share the page with your integration first)")
    per_actions.add_parser("sync", help="pull the personas from Notion now and print what changed")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from bot.bootstrap import StartupError
    from bot.logs import configure_logging
    from bot.notion_sync import init_notion_database, sync_notion_personas
    from bot.settings import load_settings

    settings = load_settings(notion_key_alone=args.action == "init-notion")
    configure_logging(settings)
    if not settings.notion_api_key:
        raise StartupError("NOTION_API_KEY is not set: set it to your integration's secret (notion.so/profile/integrations)")
    if args.action == "init-notion":
        db = asyncio.run(init_notion_database(settings, args.parent))
        print(f"Created the personas database in Notion, with {db.count} personas.\n"
              f"Set NOTION_PERSONAS_DB_ID={db.database_id} (with NOTION_API_KEY) to use it.")
        return 0
    if not settings.notion_personas:
        raise StartupError("NOTION_PERSONAS_DB_ID is not set: set it to the personas database's id or URL "
                           "(`orchestra personas init-notion --parent PAGE` creates one)")
    report = asyncio.run(sync_notion_personas(settings))
    for line in report.lines:
        print(line)
    for line in report.problems:
        print(f"skipped: {line}", file=sys.stderr)
    return 0 if report.reached else 1
