"""The PostgreSQL memory's connections: a pool, the schema's versions, reads, writes, transactions.

Why it is built this way:

- A pool (asyncpg) rather than one connection: PostgreSQL takes concurrent writers, so there is
  no group commit to build; each single-statement write is its own (autocommit) transaction and
  the few multi-statement writes take one connection for a transaction (`_transaction`). A
  connection goes back to the pool without asyncpg's reset query (`_nothing_to_reset`), which
  would double the transactions.
- Several replicas may start at once on one database: the schema is created or migrated under a
  transaction-level advisory lock, so exactly one of them does it and the others then find it
  done. A database whose version is newer than this code's is refused (`MemoryVersionError`),
  as the SQLite memory refuses one.
- The URL carries a password: it is never put in an exception or a log line. `location` is the
  URL without its password, for messages.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Self

import asyncpg

from engine.memory.connection import MemoryVersionError
from engine.memory.pg.schema import MIGRATIONS, SCHEMA_VERSION
from engine.memory.url import safe_url

log = logging.getLogger(__name__)

#: The advisory lock key that serialises creating and migrating the schema across replicas.
SCHEMA_LOCK = 0x0_0C_4E_57_2A  # "orchestra schema"


async def _nothing_to_reset(con: asyncpg.Connection) -> None:
    """The pool's reset of a connection given back: nothing to send. asyncpg's default sends
    `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` each time, one more
    transaction for every statement of ours; this memory leaves no session state behind (no SET,
    no session advisory lock, no cursor; the LISTEN connection UNLISTENs before it goes back),
    and asyncpg still rolls back a transaction left open before calling this."""


class PgConnection:
    """The pool every part of the PostgreSQL memory reads and writes through.
    Open with `await cls.open(url)`; `close()` when done."""

    def __init__(self, pool: asyncpg.Pool, location: str):
        self._pool = pool
        self.location = location  # the URL without its password: safe in messages and logs

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    async def open(cls, url: str, *, min_size: int = 2, max_size: int = 20) -> Self:
        """Raises `MemoryVersionError` for a database written by a newer Orchestra; asyncpg's
        and OSError's exceptions when the server cannot be reached (the caller words them
        without the URL's password: see `engine.memory.url.safe_url`)."""
        location = safe_url(url)
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, reset=_nothing_to_reset)
        try:
            async with pool.acquire() as con, con.transaction():
                await con.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await con.execute("CREATE TABLE IF NOT EXISTS orchestra_schema (version INTEGER NOT NULL)")
                version = await con.fetchval("SELECT max(version) FROM orchestra_schema") or 0
                if version > SCHEMA_VERSION:
                    raise MemoryVersionError(location, version, SCHEMA_VERSION)
                if version < SCHEMA_VERSION:
                    for step in range(version + 1, SCHEMA_VERSION + 1):
                        if MIGRATIONS[step].strip():
                            await con.execute(MIGRATIONS[step])
                    await con.execute("DELETE FROM orchestra_schema")
                    await con.execute("INSERT INTO orchestra_schema (version) VALUES ($1)", SCHEMA_VERSION)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, location)

    async def close(self) -> None:
        await self._pool.close()

    # -- reading and writing ---------------------------------------------------------------------

    async def _rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """A read (or a single-statement write whose RETURNING rows are wanted)."""
        return await self._pool.fetch(sql, *args)

    async def _write(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """One statement, durable (committed) when this returns; RETURNING rows come back."""
        return await self._pool.fetch(sql, *args)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A multi-statement write on one connection: committed at the end, rolled back if
        anything raises."""
        async with self._pool.acquire() as con, con.transaction():
            yield con
