"""`orchestra personas ...`: list, show, export, import, schema.

    orchestra personas list | show NAME
    orchestra personas export FILE [--sql [--dialect sqlite|postgresql]]    FILE '-': standard output
    orchestra personas import FILE        into the active source (ORCHESTRA_PERSONAS, or Notion)
    orchestra personas create NAME [field=value ...] [--from EXISTING] | set NAME field=value ...
    orchestra personas archive NAME | history NAME | init FILE
    orchestra personas schema [--dialect sqlite|postgresql]
    orchestra personas init-notion --parent PAGE | sync      (bot/notion_commands.py)

Its own module so `bot/cli.py` stays a thin parser; like it, only the standard library is
imported at module level (`orchestra --help` builds this parser).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot import notion_commands  # standard library only at import, like this module

EXIT_USAGE = 2
DIALECTS = ("sqlite", "postgresql")


def add_parser(commands: argparse._SubParsersAction) -> None:
    per = commands.add_parser("personas", help="the personas: list, show, create, set, archive, history, export, import")
    actions = per.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="one line per persona")
    show = actions.add_parser("show", help="one persona in full")
    show.add_argument("name")
    export = actions.add_parser("export", help="write every persona to a versioned JSON file (or SQL inserts)")
    export.add_argument("file", help="where to write ('-': standard output)")
    export.add_argument("--sql", action="store_true", help="write SQL INSERT statements (tables: `orchestra personas schema`)")
    export.add_argument("--dialect", choices=DIALECTS, help="SQL dialect for --sql (default: sqlite)")
    imp = actions.add_parser("import", help="read an exported JSON file into the active source (the persona file, or Notion)")
    imp.add_argument("file", help="a file written by `orchestra personas export`")
    schema = actions.add_parser("schema", help="print SQL tables that hold every persona field")
    schema.add_argument("--dialect", choices=DIALECTS, default="sqlite", help="SQL dialect (default: sqlite)")
    fields = "field=value, e.g. humor=0.3 traits.openness=0.8 domains=a,b (see `orchestra personas show NAME`)"
    create = actions.add_parser("create", help="add a persona (from a neutral template, or --from another)")
    create.add_argument("name")
    create.add_argument("assignments", nargs="*", metavar="field=value", help=fields)
    create.add_argument("--from", dest="template", metavar="EXISTING", help="start from a copy of this persona")
    setp = actions.add_parser("set", help="change fields of a persona")
    setp.add_argument("name")
    setp.add_argument("assignments", nargs="+", metavar="field=value", help=fields)
    actions.add_parser("archive", help="stop using a persona (not one the cast names)").add_argument("name")
    actions.add_parser("history", help="who changed a persona, when, and what").add_argument("name")
    init = actions.add_parser("init", help="write the default personas to a YAML file to edit (for ORCHESTRA_PERSONAS)")
    init.add_argument("file")
    notion_commands.add_parsers(actions)  # init-notion, sync


def cmd_personas(args: argparse.Namespace) -> int:
    if args.action in notion_commands.ACTIONS:
        return notion_commands.run(args)
    handler = {"export": _export, "import": _import, "schema": _schema, "init": _init, "create": _edit,
               "set": _edit, "archive": _edit, "history": _edit}.get(args.action, _list_or_show)
    return handler(args)


def _usage(action: str, message: str) -> int:
    print(f"orchestra personas {action}: {message}", file=sys.stderr)
    return EXIT_USAGE


def _settings():
    from bot.cli import _settings

    return _settings()


# --- list | show ----------------------------------------------------------------------------------


def _list_or_show(args: argparse.Namespace) -> int:
    from bot.bootstrap import persona_engine

    engine = persona_engine(_settings())
    if args.action == "show":
        card = engine.persona_card(args.name.lstrip("@"))
        if card is None:
            print(f"orchestra: unknown persona {args.name!r} (known: {', '.join(engine.personas.names)})", file=sys.stderr)
            return EXIT_USAGE
        print(card)
    else:
        print(engine.personas_overview())
    return 0


# --- schema | export ------------------------------------------------------------------------------


def _schema(args: argparse.Namespace) -> int:
    from engine.personas.export import sql_schema

    sys.stdout.write(sql_schema(args.dialect))
    return 0


def _export(args: argparse.Namespace) -> int:
    from engine.personas.export import PersonaExportError, export_json, sql_inserts
    from engine.personas.source import PersonaSourceError

    if args.dialect and not args.sql:
        return _usage("export", "--dialect goes with --sql (e.g. --sql --dialect postgresql)")
    try:
        personas = _active_personas(_settings())
    except PersonaSourceError as e:
        print(f"orchestra personas export: {e}; nothing was written", file=sys.stderr)
        return 1 if e.transient else EXIT_USAGE
    try:
        text = sql_inserts(personas, args.dialect or "sqlite") if args.sql else export_json(personas)
    except PersonaExportError as e:
        return _usage("export", str(e))
    if args.file == "-":
        sys.stdout.write(text)
        return 0
    try:
        _write_atomically(Path(args.file), text)
    except OSError as e:
        print(f"orchestra personas export: cannot write {args.file}: {e.strerror or e}", file=sys.stderr)
        return 1
    what = f"SQL INSERT statements ({args.dialect or 'sqlite'})" if args.sql else "JSON"
    print(f"Exported {len(personas)} persona(s) to {args.file} as {what}: {', '.join(p.name for p in personas)}.")
    return 0


def _active_personas(settings) -> list:
    """Every persona the active source holds now (Notion, the file, or the defaults)."""
    import asyncio

    from bot.bootstrap import persona_source

    async def load() -> list:
        source = persona_source(settings)
        try:
            return await source.load()
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()

    return asyncio.run(load())


def _write_atomically(path: Path, text: str) -> None:
    """Write beside the target, then rename: a reader never sees half a file, a failure leaves the old.

    A symlinked file is written where it points (the link stays), with the old file's mode.
    """
    import os
    import stat
    import tempfile

    path = path.resolve()
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- import | create | set | archive | history | init ----------------------------------------------


def _import(args: argparse.Namespace) -> int:
    from engine.personas.export import import_json

    source = Path(args.file)
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return _usage("import", f"{args.file} is not UTF-8 text; use a file written by `orchestra personas export`")
    except OSError as e:
        return _usage("import", f"cannot read {args.file}: {e.strerror or e}")
    incoming = import_json(text, args.file)  # everything validated before anything is written
    settings = _settings()
    if settings.personas_file is None and not settings.notion_personas:
        return _usage("import", "ORCHESTRA_PERSONAS is not set: import writes the personas into your persona file. "
                                "Set ORCHESTRA_PERSONAS=/path/to/personas.yaml (a new file is created) and run it again.")
    return _admin(settings, "import", lambda admin: admin.import_personas(incoming, actor=operator()))


def _edit(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.action == "create":
        work = lambda admin: admin.create(args.name, args.assignments, actor=operator(), template=args.template)
    elif args.action == "set":
        work = lambda admin: admin.set(args.name, args.assignments, actor=operator())
    elif args.action == "archive":
        work = lambda admin: admin.archive(args.name, actor=operator())
    else:
        work = lambda admin: admin.history(args.name)
    return _admin(settings, args.action, work)


def _admin(settings, action: str, work) -> int:
    """Run one admin call; a refusal is the person's to fix: its message and exit 2."""
    import asyncio

    from bot.bootstrap import open_persona_admin
    from engine.personas.edit import PersonaEditError

    async def run() -> str:
        async with open_persona_admin(settings) as admin:
            return await work(admin)

    try:
        print(asyncio.run(run()))
    except PersonaEditError as e:
        return _usage(action, str(e))
    return 0


def operator() -> str:
    """Who changed a persona from the CLI: the OS user."""
    import getpass
    import os

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return os.environ.get("USER") or "unknown"


def _init(args: argparse.Namespace) -> int:
    """Write the shipped personas' YAML (with its comments) to FILE, to edit and point ORCHESTRA_PERSONAS at."""
    from importlib import resources

    target = Path(args.file)
    if target.exists():
        return _usage("init", f"{args.file} already exists; name a new file (or set ORCHESTRA_PERSONAS={args.file} to use it)")
    text = resources.files("engine.personas").joinpath("defaults.yaml").read_text("utf-8")
    try:
        _write_atomically(target, text)
    except OSError as e:
        return _usage("init", f"cannot write {args.file}: {e.strerror or e}")
    print(f"Wrote the default personas to {args.file}. Set ORCHESTRA_PERSONAS={target.resolve()} to use and edit them "
          "(orchestra personas set NAME field=value).")
    return 0
