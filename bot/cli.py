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

This module parses the arguments and hands each command to its own module: `bot.run_command`
(orchestra, serve), `bot.investigation_commands` (investigate, reply, challenge, plan, close),
`bot.crew_commands`, `bot.persona_commands`, `bot.memory_commands`, `bot.job_commands`,
`bot.db_commands`. Configuration mistakes end here with their message and exit code 2.

Only the standard library is imported at module level, so `orchestra --help` answers at once;
pydantic, SQLite, the model SDKs and slack_bolt load inside the command that needs them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot import (  # standard library only at import, like this module
    crew_commands, db_commands, investigation_commands, job_commands, memory_commands, persona_commands, run_command,
)

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
    one_shot = investigation_commands.cmd_continue
    handler = {
        "investigate": investigation_commands.cmd_investigate, "reply": one_shot, "challenge": one_shot,
        "plan": one_shot, "close": one_shot, "personas": persona_commands.cmd_personas,
        "memory": memory_commands.cmd_memory, "jobs": job_commands.cmd_jobs, "serve": run_command.cmd_serve,
        "db": db_commands.cmd_db, "crew": lambda a: crew_commands.cmd_crew(a, channel_of(a), _settings),
    }.get(args.command, run_command.cmd_run)
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


if __name__ == "__main__":
    sys.exit(main())
