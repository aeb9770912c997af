"""`orchestra memory list | export | forget`: what a channel remembers, its threads and their
ids, everything as JSON, or all of it deleted (after a confirmation unless --yes).

No model is called: the memory is opened with the offline provider. Its own module so
`bot/cli.py` stays a thin parser; like it, only the standard library is imported at module
level (`orchestra --help` imports this module).
"""

from __future__ import annotations

import argparse
import sys


def cmd_memory(args: argparse.Namespace) -> int:
    import asyncio

    from bot.cli import _settings, channel_of

    args.channel = channel_of(args)
    settings = _settings()
    if args.action == "forget" and not args.yes and not _confirm(
        f"Forget everything #{args.channel} ({args.platform}/{args.workspace}) remembers? [y/N] "
    ):
        print("Nothing forgotten.", file=sys.stderr)
        return 1
    return asyncio.run(_memory(settings, args))


def _confirm(question: str) -> bool:
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


async def _memory(settings, args: argparse.Namespace) -> int:
    import json

    from bot.bootstrap import bootstrap, offline_provider
    from bot.cli import DEFAULT_CHANNEL

    app = await bootstrap(settings, provider=offline_provider())  # no model is called here
    place = (args.platform, args.workspace, args.channel)
    try:
        if args.action == "list":
            threads = await app.engine.memory_list(*place)
            if not threads:
                print(f"#{args.channel} remembers nothing.")
                if args.channel == DEFAULT_CHANNEL:
                    print(f"(#{DEFAULT_CHANNEL} is the default; --channel NAME lists another channel.)", file=sys.stderr)
            for t in threads:
                print(f"{t.id}\t{t.kind.value}\t{t.status.value}\t{t.phase.value}\t{t.lead or '-'}\t"
                      f"{t.turns} turn(s)\t{t.updated_at:%Y-%m-%d %H:%M}\t{t.title[:100]}")
        elif args.action == "export":
            print(json.dumps(await app.engine.memory_export(*place), ensure_ascii=False, indent=2, default=str))
        else:
            result = await app.engine.memory_forget(*place)
            print(f"#{args.channel} forgot {result.threads} thread(s), {result.turns} turn(s) and {result.tasks} task(s).")
        return 0
    finally:
        await app.aclose()
