"""`orchestra investigate TEXT`, `reply ID TEXT`, `challenge ID`, `plan ID`, `close ID`: one
investigation step from the shell, start to end, printed (the work itself: `bot.oneshot`).

These check what was typed before reading settings or opening memory (a blank text gets a usage
line and exit code 2). Its own module so `bot/cli.py` stays a thin parser; like it, only the
standard library is imported at module level (`orchestra --help` imports this module).
"""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


def cmd_investigate(args: argparse.Namespace) -> int:
    import asyncio

    from bot.cli import _settings
    from engine.text import is_blank

    text = " ".join(args.text).strip()
    if is_blank(text):  # before settings and memory: nothing to do, say what to pass
        return _usage(args.command, 'say what to investigate, e.g. orchestra investigate "intermittent 401s on checkout"')
    settings = _settings()
    return asyncio.run(_investigate(settings, args))


async def _investigate(settings, args: argparse.Namespace) -> int:
    from bot.cli import channel_of
    from bot.oneshot import Request
    from engine.models import TaskKind

    return await _one_shot(settings, args, Request(
        kind=TaskKind.INVESTIGATE, text=" ".join(args.text).strip(), persona=args.persona,
        channel=channel_of(args), as_json=args.json,
    ))


def cmd_continue(args: argparse.Namespace) -> int:
    """`orchestra reply ID TEXT`, `challenge ID`, `plan ID`, `close ID`: the investigation goes on."""
    import asyncio

    from bot.cli import _settings
    from bot.oneshot import ACTIONS, Request
    from engine.models import TaskKind
    from engine.text import is_blank

    if args.command == "reply":
        text = " ".join(args.text).strip()
        if is_blank(text):
            return _usage("reply", f'say what is new, e.g. orchestra reply {args.id} "it only happens in the EU" '
                                   f"(or: orchestra reply {args.id} continue)")
        request = Request(kind=TaskKind.MESSAGE, text=text, thread_id=args.id, as_json=args.json)
    else:
        request = Request(kind=ACTIONS[args.command], thread_id=args.id, as_json=args.json)
    settings = _settings()
    return asyncio.run(_one_shot(settings, args, request))


async def _one_shot(settings, args: argparse.Namespace, request) -> int:
    from bot.bootstrap import bootstrap
    from bot.oneshot import UsageError, run_request

    app = await bootstrap(settings)
    try:
        return await run_request(app, request)
    except UsageError as e:
        return _usage(args.command, str(e))
    finally:
        await app.aclose()


def _usage(command: str, message: str) -> int:
    print(f"orchestra {command}: {message}", file=sys.stderr)
    return EXIT_USAGE
