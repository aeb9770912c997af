"""`orchestra personas ...`: list, show, export, import, schema.

    orchestra personas list | show NAME
    orchestra personas export FILE [--sql [--dialect sqlite|postgresql]]    FILE '-': standard output
    orchestra personas import FILE        into the persona file named by ORCHESTRA_PERSONAS
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
HEADER = "# Personas (written by `orchestra personas import`). `orchestra personas show NAME` shows one.\n"


def add_parser(commands: argparse._SubParsersAction) -> None:
    per = commands.add_parser("personas", help="the personas: list, show, export, import, schema")
    actions = per.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="one line per persona")
    show = actions.add_parser("show", help="one persona in full")
    show.add_argument("name")
    export = actions.add_parser("export", help="write every persona to a versioned JSON file (or SQL inserts)")
    export.add_argument("file", help="where to write ('-': standard output)")
    export.add_argument("--sql", action="store_true", help="write SQL INSERT statements (tables: `orchestra personas schema`)")
    export.add_argument("--dialect", choices=DIALECTS, help="SQL dialect for --sql (default: sqlite)")
    imp = actions.add_parser("import", help="read an exported JSON file into the persona file (ORCHESTRA_PERSONAS)")
    imp.add_argument("file", help="a file written by `orchestra personas export`")
    schema = actions.add_parser("schema", help="print SQL tables that hold every persona field")
    schema.add_argument("--dialect", choices=DIALECTS, default="sqlite", help="SQL dialect (default: sqlite)")
    notion_commands.add_parsers(actions)  # init-notion, sync


def cmd_personas(args: argparse.Namespace) -> int:
    if args.action in notion_commands.ACTIONS:
        return notion_commands.run(args)
    handler = {"export": _export, "import": _import, "schema": _schema}.get(args.action, _list_or_show)
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
    from bot.bootstrap import load_personas
    from engine.personas.export import PersonaExportError, export_json, sql_inserts

    if args.dialect and not args.sql:
        return _usage("export", "--dialect goes with --sql (e.g. --sql --dialect postgresql)")
    personas = list(load_personas(_settings()))
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


# --- import ---------------------------------------------------------------------------------------


def _import(args: argparse.Namespace) -> int:
    from engine.personas import PersonaRegistry
    from engine.personas.edit import diff
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
    target = settings.personas_file
    if target is None:
        return _usage("import", "ORCHESTRA_PERSONAS is not set: import writes the personas into your persona file. "
                                "Set ORCHESTRA_PERSONAS=/path/to/personas.yaml (a new file is created) and run it again.")
    existing = list(PersonaRegistry.from_yaml(target)) if target.exists() else []
    by_name = {p.name: p for p in existing}
    added, updated, same = [], [], []
    for persona in incoming:
        old = by_name.get(persona.name)
        if old is None:
            added.append(persona.name)
        elif diff(old, persona):
            updated.append(f"{persona.name} ({', '.join(diff(old, persona))})")
        else:
            same.append(persona.name)
        by_name[persona.name] = persona
    merged = list(by_name.values())
    # the whole set as it will be loaded: two personas must not share a name or display name
    PersonaRegistry.from_mapping([p.model_dump(mode="json") for p in merged], str(target))
    had_comments = target.exists() and any(line.lstrip().startswith("#") and line.rstrip() != HEADER.rstrip()
                                           for line in target.read_text("utf-8").splitlines())
    try:
        write_personas_yaml(target, merged)
    except OSError as e:
        print(f"orchestra personas import: cannot write {target}: {e.strerror or e}; nothing was changed", file=sys.stderr)
        return 1
    parts = [f"{label}: {', '.join(names)}" for label, names in
             (("new", added), ("updated", updated), ("unchanged", same)) if names]
    print(f"Imported {len(incoming)} persona(s) into {target}; " + "; ".join(parts) + ".")
    if had_comments:
        print(f"Note: {target} was rewritten; its comments were not kept.", file=sys.stderr)
    return 0


def personas_yaml(personas) -> str:
    """The persona file's form (name: settings), multi-line text as literal blocks, UTF-8 as is.

    A stand-in until the YAML persona source (which keeps comments and order) writes the file.
    """
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None  # PyYAML falls back to quotes where a block cannot hold it
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    data = {p.name: {k: v for k, v in p.model_dump(mode="json").items() if k != "name"} for p in personas}
    return HEADER + "\n" + yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)


def write_personas_yaml(path: Path, personas) -> None:
    """Write the persona file and prove it loads back to the same personas before it replaces the old."""
    from engine.personas import PersonaRegistry
    from engine.personas.registry import load_yaml

    text = personas_yaml(personas)
    problems: list[str] = []
    data = load_yaml(text, problems)
    if problems or list(PersonaRegistry.from_mapping(data, str(path))) != list(personas):
        raise RuntimeError("the persona file would not read back the same")  # a bug of ours: logged, nothing written
    _write_atomically(path, text)
