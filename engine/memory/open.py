"""Open the engine's memory where `ORCHESTRA_DB` points: a SQLite file or a PostgreSQL database.

The one place that knows there are two; everything above gets the memory port (`Memory`).
"""

from __future__ import annotations

from pathlib import Path

from engine.memory.port import Memory
from engine.memory.url import is_postgres_url


async def open_memory(db: str | Path) -> Memory:
    """SQLiteMemory for a path, PostgresMemory for a `postgresql://` URL (imported only then)."""
    if is_postgres_url(db):
        from engine.memory.pg.store import PostgresMemory

        return await PostgresMemory.open(str(db))
    from engine.memory.store import SQLiteMemory

    return await SQLiteMemory.open(db)
