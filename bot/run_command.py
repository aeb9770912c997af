"""`orchestra` (Slack and/or Discord, else a chat in this terminal) and `orchestra serve` (the
platforms without a terminal, plus one HTTP server: the operator API, /health, /ready, /metrics,
Slack's /slack/events): the bot running until Ctrl-C, SIGTERM or the end of the terminal's input.

`_run` starts everything in order (the collector tuned first, then the composition root, the
platforms verified before the banner, unfinished work resumed, the scheduled jobs) and stops it
in reverse, with a bounded grace. Its own module so `bot/cli.py` stays a thin parser; like it,
only the standard library is imported at module level (`orchestra --help` imports this module).
"""

from __future__ import annotations

import argparse
import sys


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from bot.cli import _settings
    from bot.preflight import check_can_start

    settings = _settings()
    check_can_start(settings, slack_http=args.slack_http)  # before anything is opened
    return asyncio.run(_run(settings, args))


def cmd_serve(args: argparse.Namespace) -> int:
    """`orchestra serve`: the platforms as `orchestra` runs them (Slack over HTTP when its
    signing secret is set), no terminal, and one HTTP server for the API and Slack's events."""
    import asyncio

    from bot.cli import _settings
    from bot.serve import check_can_serve

    settings = _settings()
    check_can_serve(settings)
    args.slack_http = settings.slack_http_mode
    args.port = args.serve_port or args.port
    return asyncio.run(_run(settings, args, serving=True))


async def _run(settings, args: argparse.Namespace, *, serving: bool = False) -> int:
    import asyncio
    import signal

    from bot.banner import banner
    from bot.bootstrap import bootstrap, build_scheduler
    from bot.cli import project_version
    from bot.heap import tune_collector
    from bot.platforms import build_platforms, verify_platforms

    tune_collector()  # before start-up's own allocations: see bot/heap.py
    app = await bootstrap(settings)
    platforms: list = []
    scheduler = None
    server = None
    finished = False
    try:
        platforms = build_platforms(app, slack_http=args.slack_http, port=args.port, channel=args.terminal_channel,
                                    terminal=not serving)
        if serving or args.slack_http:  # Slack's events and the API share one server and port
            from bot.serve import http_server

            server = http_server(app, platforms, host=getattr(args, "host", "0.0.0.0"), port=args.port)
        await verify_platforms(platforms)  # a refused token stops here: no banner, no work resumed
        print(banner(settings, version=project_version(), platforms=[p.description for p in platforms],
                     personas=[f"{p.avatar.emoji_char} {p.display_name}" for p in app.personas],
                     personas_note=app.personas_note) + "\n", flush=True)
        if server is not None:
            from bot.serve import start_server

            bound = await start_server(server)
            if serving:
                print(f"Serving on http://{server.host}:{bound}: /api/ (the operator API"
                      f"{'' if settings.api_token else ': off, ORCHESTRA_API_TOKEN is not set'}), /health, /ready",
                      flush=True)
        resumed = await app.engine.start()
        if resumed:
            print(f"Resuming {resumed} unfinished task(s).", flush=True)
        scheduler = build_scheduler(app)
        scheduler.start()  # scheduled jobs, in this loop, posting through the platforms' outboxes
        stop = asyncio.Event()
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        except (NotImplementedError, RuntimeError):  # not on this platform or thread
            pass
        waiters = [asyncio.create_task(p.run(), name=f"platform-{p.name}") for p in platforms]
        waiters.append(asyncio.create_task(stop.wait(), name="sigterm"))
        if serving:  # Ctrl-C (KeyboardInterrupt) or SIGTERM end it; no platform's end does
            waiters.append(asyncio.create_task(asyncio.Event().wait(), name="serve"))
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        for w in done:
            if not w.cancelled() and w.exception() is not None:
                raise w.exception()
        finished = True
        return 0
    finally:
        if server is not None:  # stop taking requests first
            await server.stop()
        if scheduler is not None:
            await scheduler.stop(grace=30.0 if finished else 5.0)  # a hung job must not hold the exit
        for p in platforms:
            try:
                await p.stop()
            except Exception as e:  # noqa: BLE001 - shutting down: report and go on
                print(f"orchestra: stopping {p.name}: {e.__class__.__name__}", file=sys.stderr)
        await app.aclose(grace=None if finished else 5.0)
