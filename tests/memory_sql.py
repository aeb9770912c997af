"""Plain SQL on a test's memory, whichever backend holds it: what a test does behind the memory's
back (backdate rows, as a clock cannot; count rows, to see what is left), through a connection of
its own. SQL is written once, with `?` placeholders (SQLite's), and numbered for PostgreSQL."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from engine.memory.url import is_postgres_url


def _numbered(sql: str) -> str:
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


async def execute(db: str | Path, *statements: tuple[str, tuple[Any, ...]] | str) -> None:
    """Run the statements in one transaction (each a SQL string or a (sql, params) pair)."""
    pairs = [(s, ()) if isinstance(s, str) else s for s in statements]
    if is_postgres_url(db):
        import asyncpg

        con = await asyncpg.connect(str(db))
        try:
            async with con.transaction():
                for sql, params in pairs:
                    await con.execute(_numbered(sql), *params)
        finally:
            await con.close()
        return
    con = sqlite3.connect(db)
    try:
        with con:
            for sql, params in pairs:
                con.execute(sql, params)
    finally:
        con.close()


async def scalar(db: str | Path, sql: str, *params: Any) -> Any:
    """The first column of the first row."""
    if is_postgres_url(db):
        import asyncpg

        con = await asyncpg.connect(str(db))
        try:
            return await con.fetchval(_numbered(sql), *params)
        finally:
            await con.close()
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchone()[0]
    finally:
        con.close()
