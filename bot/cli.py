"""`orchestra`: run the bot (chat platforms, or the terminal), or one command from the shell.

    orchestra                                   Slack and/or Discord if configured, else a chat in this terminal
    orchestra --slack-http --port 3000          Slack over HTTP (Events API) instead of Socket Mode
    orchestra serve [--host H] [--port N]       the operator API (/api/), /health, /ready, /metrics, Slack over HTTP
    orchestra investigate TEXT [--channel NAME] [--json]   one investigation, printed
    orchestra reply ID TEXT | challenge ID | plan ID | close ID   continue it (ids: payments-1)
    orchestra crew TEXT [--domain D] [--complexity low|medium|high] [--json]   a crew of AI agents, printed
    orchestra personas list | show | create | set | archive | history | export | import | schema | init | sync
    orchestra memory list | export | forget [--channel NAME]
    orchestra jobs [list] | jobs run NAME         scheduled jobs: when they run, how they ended; run one now
    orchestra db status | db migrate --to postgresql://...   the memory's database; SQLite -> PostgreSQL

Only the standard library is imported at module level, so `orchestra --help` answers at once;
pydantic, SQLite, the model SDKs and slack_bolt load inside the command that needs them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot import crew_commands, db_commands, job_commands, persona_commands  # standard library only at import, like this module

EXIT_USAGE = 2  # bad settings, unknown persona, wrong flags: the same code argparse uses
EXIT_INTERRUPTED = 130
LOCAL = "local"
#: The name on PyPI (`orchestra` there is another project); the command is still `orchestra`.
DISTRIBUTION = "orchestra-personas"
DEFAULT_CHANNEL = "terminal"  # the terminal chat's, `investigate`'s and `memory`'s: one memory


def channel_arg(raw: str) -> str:
    """`--channel '#payments'` and `--channel payments` are the same channel."""
    from engine.text import channel_name  # standard library only: cheap while parsing

    name = channel_name(raw)
    if not name:
        raise argparse.ArgumentTypeError("give a channel name, e.g. --channel payments")
    return name


def thread_id_arg(raw: str) -> str:
    """Ids are lower case and readable (payments-1); what was pasted around them does not count."""
    from engine.text import visible

    name = visible(raw).strip().lower()
    if not name:
        raise argparse.ArgumentTypeError("give an investigation id, e.g. payments-1 (see `orchestra memory list`)")
    return name


def channel_of(args: argparse.Namespace) -> str:
    """A command's --channel, else the one given before the command, else the default."""
    return getattr(args, "channel", None) or args.terminal_channel or DEFAULT_CHANNEL

EPILOG = """\
Settings come from the environment, a .env file, and an optional YAML file (ORCHESTRA_CONFIG):
  ANTHROPIC_API_KEY / OPENAI_API_KEY / OPENAI_BASE_URL   the model (none: offline rehearsal)
  SLACK_BOT_TOKEN + SLACK_APP_TOKEN                      Slack in Socket Mode
  SLACK_BOT_TOKEN + SLACK_SIGNING_SECRET                 Slack over HTTP (--slack-http)
  DISCORD_TOKEN                                          Discord (alongside Slack when both are set)
  ORCHESTRA_API_TOKEN                                    the operator API (orchestra serve; read-only: ORCHESTRA_API_READ_TOKEN)
  ORCHESTRA_DB                                           the memory: a SQLite file, or postgresql://... (replicas)
With no chat platform configured, orchestra opens a chat in this terminal (or reads lines piped
into it); with neither, it says what to set and exits with code 2, as for every setting mistake."""


def project_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a checkout that is not installed
        import tomllib
        from pathlib import Path

        try:
            with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
                return str(tomllib.load(f)["project"]["version"])
        except (OSError, KeyError, ValueError):
            return "unknown"


class _VersionAction(argparse.Action):
    """Like action="version", but the version is looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any):
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(f"orchestra {project_version()}")
        parser.exit()


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1 to 65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestra",
        description="Cherry, Sophia and Karen: AI personas that answer and investigate in Slack, Discord and the terminal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--slack-http", action="store_true", help="serve Slack over HTTP (Events API) instead of Socket Mode")
    parser.add_argument("--port", type=_port, default=3000, help="port for --slack-http (default 3000)")
    parser.add_argument("--channel", dest="terminal_channel", default=DEFAULT_CHANNEL, metavar="NAME", type=channel_arg,
                        help=f"the channel whose memory the terminal chat and the commands use (default: {DEFAULT_CHANNEL})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    json_help = "print one JSON object instead of the conversation"
    channel_help = f"channel whose memory to use, with or without '#' (default: {DEFAULT_CHANNEL})"

    inv = commands.add_parser("investigate", help="run one investigation and print it (then reply, challenge, plan, close)")
    inv.add_argument("text", nargs="*", help="what to investigate")
    inv.add_argument("--persona", help="who leads (default: chosen by the topic)")
    inv.add_argument("--channel", type=channel_arg, metavar="NAME", help=channel_help)
    inv.add_argument("--json", action="store_true", help=json_help)

    reply = commands.add_parser("reply", help="add evidence to an investigation: it goes on, and prints the new turns")
    reply.add_argument("id", type=thread_id_arg, help="the investigation's id (payments-1; `orchestra memory list` shows them)")
    reply.add_argument("text", nargs="*", help="the new evidence, or 'continue'")
    reply.add_argument("--json", action="store_true", help=json_help)
    for name, text in (
        ("challenge", "send an investigation to the critic"),
        ("plan", "move an investigation to planning"),
        ("close", "close an investigation (the channel remembers it)"),
    ):
        act = commands.add_parser(name, help=text)
        act.add_argument("id", type=thread_id_arg, help="the investigation's id (payments-1; `orchestra memory list` shows them)")
        act.add_argument("--json", action="store_true", help=json_help)

    crew_commands.add_parser(commands, channel_type=channel_arg, channel_help=channel_help, json_help=json_help)
    serve = commands.add_parser("serve", help="one HTTP server: the operator API, /health, /ready, /metrics, "
                                               "Slack's /slack/events (HTTP mode), and Discord when configured")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0; 127.0.0.1: this machine only)")
    serve.add_argument("--port", dest="serve_port", type=_port, default=None, metavar="N", help="port (default 3000)")

    persona_commands.add_parser(commands)
    job_commands.add_parser(commands)
    db_commands.add_parser(commands)

    mem = commands.add_parser("memory", help="what a channel remembers: list, export, forget")
    mem_actions = mem.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("list", "the channel's threads and their ids"),
        ("export", "everything the channel remembers, as JSON"),
        ("forget", "delete everything the channel remembers"),
    ):
        sub = mem_actions.add_parser(name, help=text)
        sub.add_argument("--channel", type=channel_arg, metavar="NAME", help=channel_help)
        sub.add_argument("--platform", default=LOCAL, type=str.lower, help="platform (default: local; Slack: slack)")
        sub.add_argument("--workspace", default=LOCAL, help="workspace (default: local; Slack: the team id)")
        if name == "forget":
            sub.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")  # an emoji must never crash an ASCII terminal
        except (AttributeError, ValueError):
            pass
    handler = {
        "investigate": cmd_investigate, "reply": cmd_continue, "challenge": cmd_continue, "plan": cmd_continue,
        "close": cmd_continue, "personas": persona_commands.cmd_personas, "memory": cmd_memory,
        "jobs": job_commands.cmd_jobs, "serve": cmd_serve, "db": db_commands.cmd_db,
        "crew": lambda a: crew_commands.cmd_crew(a, channel_of(a), _settings),
    }.get(args.command, cmd_run)
    try:
        return _guarded(handler, args)
    except KeyboardInterrupt:
        print("\nInterrupted: bye. Unfinished work resumes on the next start.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `orchestra memory export ... | head`: the reader has had enough
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1


def _guarded(handler, args: argparse.Namespace) -> int:
    """Configuration mistakes are the person's to fix: their message, no traceback, exit 2."""
    from bot.bootstrap import StartupError
    from bot.settings import SettingsError
    from engine.personas import PersonaConfigError

    try:
        return handler(args)
    except (SettingsError, PersonaConfigError, StartupError) as e:
        print(f"orchestra: {e}", file=sys.stderr)
        return getattr(e, "exit_code", EXIT_USAGE)
    except Exception:  # noqa: BLE001 - e.g. Slack refusing a token: through the scrubbing log handler
        import logging

        logging.getLogger("orchestra").exception("orchestra stopped on an unexpected error")
        return 1


def _settings():
    from bot.logs import configure_logging
    from bot.settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    return settings


# --- orchestra (run) --------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from bot.preflight import check_can_start

    settings = _settings()
    check_can_start(settings, slack_http=args.slack_http)  # before anything is opened
    return asyncio.run(_run(settings, args))


def cmd_serve(args: argparse.Namespace) -> int:
    """`orchestra serve`: the platforms as `orchestra` runs them (Slack over HTTP when its
    signing secret is set), no terminal, and one HTTP server for the API and Slack's events."""
    import asyncio

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


# --- orchestra investigate | reply | challenge | plan | close -----------------------------------


def cmd_investigate(args: argparse.Namespace) -> int:
    import asyncio

    from engine.text import is_blank

    text = " ".join(args.text).strip()
    if is_blank(text):  # before settings and memory: nothing to do, say what to pass
        return _usage(args.command, 'say what to investigate, e.g. orchestra investigate "intermittent 401s on checkout"')
    settings = _settings()
    return asyncio.run(_investigate(settings, args))


async def _investigate(settings, args: argparse.Namespace) -> int:
    from bot.oneshot import Request
    from engine.models import TaskKind

    return await _one_shot(settings, args, Request(
        kind=TaskKind.INVESTIGATE, text=" ".join(args.text).strip(), persona=args.persona,
        channel=channel_of(args), as_json=args.json,
    ))


def cmd_continue(args: argparse.Namespace) -> int:
    """`orchestra reply ID TEXT`, `challenge ID`, `plan ID`, `close ID`: the investigation goes on."""
    import asyncio

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


def investigation_report(rec, turns, posts) -> dict:
    """The investigation as one JSON object (see `bot.oneshot.investigation_report`)."""
    from bot.oneshot import investigation_report as report

    return report(rec, turns, posts)


# --- orchestra memory -------------------------------------------------------------------------


def cmd_memory(args: argparse.Namespace) -> int:
    import asyncio

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


if __name__ == "__main__":
    sys.exit(main())
