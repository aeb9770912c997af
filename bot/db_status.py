"""`orchestra db status`: the memory's schema version and its tables' row counts, read without
creating or migrating anything (a status must not change what it looks at)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.setting_values import PostgresURL
from bot.settings import SettingsError


@dataclass
class MemoryStatus:
    version: int | None  # None: no memory there yet
    known: bool = True  # False: written by a newer Orchestra
    counts: list[tuple[str, int]] = field(default_factory=list)


async def memory_status(db: Path | PostgresURL) -> MemoryStatus:
    if isinstance(db, PostgresURL):
        return await _postgres_status(db.get_secret_value())
    return _sqlite_status(Path(db))


def _sqlite_status(path: Path) -> MemoryStatus:
    from bot.db_migrate import _q, sqlite_tables
    from engine.memory.schema import SCHEMA_VERSION

    if not path.is_file():
        return MemoryStatus(None)
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            counts = [(t, con.execute(f"SELECT count(*) FROM {_q(t)}").fetchone()[0]) for t in sqlite_tables(con)]
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise SettingsError([f"ORCHESTRA_DB: cannot read {path} as a memory ({e})"]) from None
    return MemoryStatus(version or None, version <= SCHEMA_VERSION, counts)


async def _postgres_status(url: str) -> MemoryStatus:
    from bot.memory_open import postgres_problem, require_asyncpg

    require_asyncpg()
    import asyncpg

    from engine.memory.pg.schema import SCHEMA_VERSION

    try:
        con: Any = await asyncpg.connect(url, timeout=30)
    except Exception as e:  # noqa: BLE001 - worded without the URL's password
        raise SettingsError([postgres_problem("ORCHESTRA_DB", url, e)]) from None
    try:
        if await con.fetchval("SELECT to_regclass('orchestra_schema')") is None:
            return MemoryStatus(None)
        version = await con.fetchval("SELECT max(version) FROM orchestra_schema") or 0
        tables = [r["table_name"] for r in await con.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' AND table_name <> 'orchestra_schema' ORDER BY table_name")]
        counts = [(t, await con.fetchval(f'SELECT count(*) FROM "{t}"')) for t in tables]
    finally:
        await con.close()
    return MemoryStatus(version or None, version <= SCHEMA_VERSION, counts)
