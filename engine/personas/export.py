"""Personas out and back in: versioned JSON, and SQL that holds the same data elsewhere.

A team that moves its personas to another tool (or another database) takes them as a JSON file
with a schema version, so a later Orchestra can still read it, or as SQL for SQLite or
PostgreSQL. Everything here is pure: text in, text or personas out; no files, no network.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from engine.modes import Mode
from engine.personas.model import Persona, Traits
from engine.personas.registry import PersonaConfigError, PersonaRegistry

#: The version of the JSON layout written by `export_json`; `import_json` reads exactly these.
EXPORT_SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({EXPORT_SCHEMA_VERSION})

Dialect = Literal["sqlite", "postgresql"]
DIALECTS: tuple[str, ...] = ("sqlite", "postgresql")

TRAITS: tuple[str, ...] = tuple(Traits.model_fields)


class PersonaImportError(PersonaConfigError):
    """A file that cannot be imported: every problem at once, each naming the persona and field.

    A `PersonaConfigError`, so the CLI answers it like any persona file mistake (exit 2).
    """


class PersonaExportError(ValueError):
    """A persona that one export format cannot hold (e.g. a NUL character in SQL text)."""


# --- JSON -----------------------------------------------------------------------------------------


def export_json(personas: Iterable[Persona], *, exported_at: datetime | None = None) -> str:
    """Every persona, every field, in a versioned JSON document (UTF-8, readable, stable order)."""
    when = (exported_at or datetime.now(UTC)).isoformat(timespec="seconds")
    document = {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "exported_at": when,
        "personas": [p.model_dump(mode="json") for p in personas],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def import_json(text: str, source: str = "the import file") -> list[Persona]:
    """The personas of an exported document, all validated before any is returned.

    Raises `PersonaImportError` naming what to fix: not JSON, a schema version this Orchestra
    does not know, or each persona's bad fields (the same rules as the persona file: traits
    0..1, unique names, known placeholders, no unknown settings).
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise PersonaImportError(source, [(
            f"not a JSON file (the problem is at line {e.lineno}, column {e.colno}); "
            "use a file written by `orchestra personas export FILE`"
        )]) from None
    if not isinstance(document, dict) or "personas" not in document:
        raise PersonaImportError(source, [(
            "not a persona export: expected an object with schema_version and personas "
            "(written by `orchestra personas export FILE`)"
        )])
    version = document.get("schema_version")
    if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        known = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
        raise PersonaImportError(source, [(
            f"schema_version {version!r} is not one this Orchestra reads (it reads: {known}); "
            "export the file again with this version, or upgrade Orchestra"
        )])
    entries = document["personas"]
    if not isinstance(entries, list) or not entries:
        raise PersonaImportError(source, ["personas: expected a non-empty list of personas"])
    try:
        registry = PersonaRegistry.from_mapping(entries, source)
    except PersonaConfigError as e:
        raise PersonaImportError(source, e.problems) from None
    return list(registry)


# --- SQL ------------------------------------------------------------------------------------------


def _check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; use one of: {', '.join(DIALECTS)}")


def sql_schema(dialect: Dialect = "sqlite") -> str:
    """Tables that hold every field of a persona; lists keep their order in child tables.

    `personas` has one row per persona (traits and avatar flattened into columns);
    `persona_domains` and `persona_modes` hold the lists, `seq` keeping their order.
    """
    _check_dialect(dialect)
    real = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"

    def fraction(column: str) -> str:
        return f"    {column} {real} NOT NULL CHECK ({column} >= 0 AND {column} <= 1),"

    modes = ", ".join(f"'{m.value}'" for m in Mode)
    lines = [
        f"-- Orchestra personas ({dialect}), the data of export schema version {EXPORT_SCHEMA_VERSION}",
        "CREATE TABLE personas (",
        "    name TEXT PRIMARY KEY,",
        "    display_name TEXT NOT NULL,",
        "    role TEXT NOT NULL,",
        "    backstory TEXT NOT NULL,",
        *(fraction(t) for t in TRAITS),
        fraction("humor"),
        fraction("formality"),
        "    avatar_emoji TEXT NOT NULL,",
        "    avatar_emoji_char TEXT NOT NULL,",
        "    avatar_url TEXT,",
        "    color TEXT NOT NULL,",
        "    model TEXT,",
        "    template TEXT NOT NULL",
        ");",
        "CREATE TABLE persona_domains (",
        "    persona TEXT NOT NULL REFERENCES personas (name) ON DELETE CASCADE,",
        "    seq INTEGER NOT NULL,",
        "    domain TEXT NOT NULL,",
        "    PRIMARY KEY (persona, seq)",
        ");",
        "CREATE TABLE persona_modes (",
        "    persona TEXT NOT NULL REFERENCES personas (name) ON DELETE CASCADE,",
        "    seq INTEGER NOT NULL,",
        f"    mode TEXT NOT NULL CHECK (mode IN ({modes})),",
        "    PRIMARY KEY (persona, seq)",
        ");",
    ]
    return "\n".join(lines) + "\n"


#: The `personas` table's columns, in order, and how each is read from a persona.
PERSONA_COLUMNS: tuple[str, ...] = (
    "name", "display_name", "role", "backstory", *TRAITS, "humor", "formality",
    "avatar_emoji", "avatar_emoji_char", "avatar_url", "color", "model", "template",
)


def _row(p: Persona) -> dict[str, Any]:
    return {
        "name": p.name, "display_name": p.display_name, "role": p.role, "backstory": p.backstory,
        **{t: getattr(p.traits, t) for t in TRAITS},
        "humor": p.humor, "formality": p.formality,
        "avatar_emoji": p.avatar.emoji, "avatar_emoji_char": p.avatar.emoji_char, "avatar_url": p.avatar.url,
        "color": p.color, "model": p.model, "template": p.template,
    }


def _literal(value: Any, where: str) -> str:
    """A SQL literal both dialects read the same (standard strings: only the quote is doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        raise TypeError(f"{where}: unexpected boolean")
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    text = str(value)
    if "\x00" in text:
        raise PersonaExportError(f"{where}: contains a NUL character, which SQL text cannot hold; remove it first")
    return "'" + text.replace("'", "''") + "'"


def sql_inserts(personas: Iterable[Persona], dialect: Dialect = "sqlite") -> str:
    """INSERT statements for `sql_schema`'s tables, in one transaction.

    Floats are written with Python's shortest exact form, so they read back bit for bit; text
    is a standard SQL string (PostgreSQL's standard_conforming_strings, on by default since 9.1).
    """
    _check_dialect(dialect)
    lines = [f"-- Orchestra personas ({dialect}), export schema version {EXPORT_SCHEMA_VERSION}"]
    if dialect == "postgresql":  # the default since 9.1; set here so a backslash is a backslash on any server
        lines.append("SET standard_conforming_strings = on;")
    lines.append("BEGIN;")
    columns = ", ".join(PERSONA_COLUMNS)
    for p in personas:
        row = _row(p)
        values = ", ".join(_literal(row[c], f"{p.name}.{c}") for c in PERSONA_COLUMNS)
        lines.append(f"INSERT INTO personas ({columns}) VALUES ({values});")
        name = _literal(p.name, f"{p.name}.name")
        for seq, domain in enumerate(p.domains):
            lines.append("INSERT INTO persona_domains (persona, seq, domain) VALUES "
                         f"({name}, {seq}, {_literal(domain, f'{p.name}.domains')});")
        for seq, mode in enumerate(p.preferred_modes):
            lines.append(f"INSERT INTO persona_modes (persona, seq, mode) VALUES ({name}, {seq}, '{Mode(mode).value}');")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"
