"""The memory's one SQLite connection: opening (schema and migrations), group commit, checkpoints.

Why it is built this way:

- One connection in autocommit mode. Almost every write is a single SQL statement (triggers do the
  bookkeeping), so it is atomic on its own. Those writes go through group commit (`_write`):
  alone, a statement is its own transaction with no separate COMMIT hop; under load, the ones
  that arrived meanwhile share one transaction. The few multi-statement writes hold
  `_write_lock` (`_transaction`), and so does each batch, so nothing slips into someone else's
  transaction.
- WAL checkpoints fsync (~10 ms on this disk) and would land inside some unlucky add_turn. Every
  CHECKPOINT_EVERY writes a PASSIVE checkpoint runs in a worker thread on a short-lived second
  connection (it never blocks the main one); SQLite's automatic checkpoint remains as a backstop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

import aiosqlite

from engine.memory.schema import _SCHEMA, MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 200  # write transactions between two background WAL checkpoints


class MemoryVersionError(RuntimeError):
    """The database was written by a newer Orchestra: its schema is one this code does not know.

    Writing to it would risk rows the newer code cannot read, so it is refused. A RuntimeError
    (as this refusal always was), so callers that caught that still do.
    """

    def __init__(self, path: Path | str, version: int, known: int = SCHEMA_VERSION):
        self.path = path  # a file, or a PostgreSQL URL without its password
        self.version = version
        self.known = known
        super().__init__(
            f"{path} was written by a newer Orchestra (memory schema version {version}; this one "
            f"knows {known}): upgrade Orchestra, or use another memory"
        )


def _checkpoint(path: Path) -> None:
    """Copy the WAL into the database from a short-lived second connection, in a worker thread.

    PASSIVE never blocks the store's own connection, which keeps reading and writing meanwhile;
    the fsyncs that make checkpoints slow happen here instead of inside someone's add_turn.
    """
    try:
        con = sqlite3.connect(path, timeout=1.0)
        try:
            con.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            con.close()
    except sqlite3.Error as exc:  # the automatic checkpoint is still there as a fallback
        log.debug("background checkpoint of %s failed: %s", path, exc)


class MemoryConnection:
    """The connection every part of the memory reads and writes through. Open with
    `await cls.open(path)`; `close()` when done."""

    def __init__(self, db: aiosqlite.Connection, path: Path):
        self._db = db
        self.path = path
        self._write_lock = asyncio.Lock()
        self._write_queue: list[tuple[str, Any, asyncio.Future[list[Any]]]] = []
        self._write_flusher: asyncio.Task[None] | None = None
        self._writes = 0
        self._checkpointer: asyncio.Future[None] | None = None
        self._reading = False  # a read is on its way to the thread: later ones wait and go together
        self._read_queue: list[tuple[str, Any, asyncio.Future[list[sqlite3.Row]]]] = []
        self._read_flusher: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path) -> Self:
        """Raises `MemoryVersionError` for a database written by a newer Orchestra."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)  # autocommit: see module doc
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("PRAGMA busy_timeout = 5000")
            await db.execute("PRAGMA cache_size = -32000")  # 32 MB: the FTS index stays warm
            await db.execute("PRAGMA temp_store = MEMORY")
            # Checkpoints fsync (~10 ms here): `_wrote` runs them beside the hot path;
            # the automatic one only steps in if that falls far behind.
            await db.execute("PRAGMA wal_autocheckpoint = 20000")
            await db.execute("PRAGMA journal_size_limit = 67108864")
            try:  # recall needs ln() and pow(): built in unless SQLite lacks math functions
                await db.execute_fetchall("SELECT ln(1.0), pow(2.0, 1.0)")
            except sqlite3.OperationalError:
                await db.create_function("ln", 1, math.log, deterministic=True)
                await db.create_function("pow", 2, math.pow, deterministic=True)
            version = (await db.execute_fetchall("PRAGMA user_version"))[0][0]
            if version == 0:
                await db.executescript(
                    f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
                )
            elif version < SCHEMA_VERSION:  # an older database: bring it up to date, in one go
                steps = "".join(MIGRATIONS[v] for v in range(version + 1, SCHEMA_VERSION + 1))
                await db.executescript(
                    f"BEGIN IMMEDIATE;{steps}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
                )
            elif version != SCHEMA_VERSION:
                raise MemoryVersionError(path, version)
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        if self._read_flusher is not None:
            await asyncio.gather(self._read_flusher, return_exceptions=True)
        if self._write_flusher is not None:
            await asyncio.gather(self._write_flusher, return_exceptions=True)
        if self._checkpointer is not None:
            await asyncio.gather(self._checkpointer, return_exceptions=True)
        await self._db.close()  # the last connection checkpoints and removes the WAL

    def _wrote(self) -> None:
        """Count a write transaction; every CHECKPOINT_EVERY, checkpoint off the hot path."""
        self._writes += 1
        if self._writes >= CHECKPOINT_EVERY and (
            self._checkpointer is None or self._checkpointer.done()
        ):
            self._writes = 0
            self._checkpointer = asyncio.ensure_future(asyncio.to_thread(_checkpoint, self.path))

    # -- reading and writing ---------------------------------------------------------------------

    async def _rows(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """One query's rows. Group reads, like group commit: a query made while another is on its
        way to the connection's thread waits for it, then goes with every query that arrived
        meanwhile, in one hand-off (`_read_batch`), in the order they were made. Alone, a query
        goes at once, as before."""
        if self._reading:
            future: asyncio.Future[list[sqlite3.Row]] = asyncio.get_running_loop().create_future()
            self._read_queue.append((sql, params, future))
            return await future
        self._reading = True
        try:
            return list(await self._db.execute_fetchall(sql, params))
        finally:
            if self._read_queue:
                self._read_flusher = asyncio.create_task(self._flush_reads())
            else:
                self._reading = False

    async def _flush_reads(self) -> None:
        try:
            while self._read_queue:
                batch, self._read_queue = self._read_queue, []
                try:
                    results = await _on_connection_thread(self._db, _read_batch, [(sql, p) for sql, p, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every caller in the batch hears it
                    results = [exc] * len(batch)
                for (_, _, future), result in zip(batch, results):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._reading = False
            for _, _, future in self._read_queue:  # only if this task was cancelled (closing)
                if not future.done():
                    future.cancel()
            self._read_queue = []

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A multi-statement write: one transaction, holding `_write_lock` so that no group
        commit batch slips in; rolled back if anything raises, counted once committed."""
        async with self._write_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    await self._db.execute("ROLLBACK")
                raise
        self._wrote()

    async def _write(self, sql: str, params: Any = ()) -> list[Any]:
        """One statement, durable when this returns; RETURNING rows come back.

        Group commit: statements that arrive while a batch is being written are written next,
        together, in one transaction. Alone, a statement is its own (autocommit) transaction;
        under load (200 investigations whose model calls all return at once) the commits are
        shared instead of queueing one by one behind the single connection.
        """
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._write_queue.append((sql, params, future))
        if self._write_flusher is None or self._write_flusher.done():
            self._write_flusher = asyncio.create_task(self._flush_writes())
        return await future

    async def _flush_writes(self) -> None:
        while self._write_queue:
            batch, self._write_queue = self._write_queue, []
            outcomes: list[tuple[asyncio.Future[list[Any]], Any]] = []
            try:
                async with self._write_lock:
                    if len(batch) == 1:
                        sql, params, future = batch[0]
                        try:
                            outcomes.append((future, list(await self._db.execute_fetchall(sql, params))))
                        except sqlite3.Error as exc:
                            outcomes.append((future, exc))
                    else:
                        results = await _on_connection_thread(
                            self._db, _write_batch, [(sql, params) for sql, params, _ in batch]
                        )
                        outcomes = [(future, result) for (_, _, future), result in zip(batch, results)]
            except Exception as exc:  # noqa: BLE001 - every caller in the batch hears it
                outcomes = [(future, exc) for _, _, future in batch]
            for future, result in outcomes:
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
            self._wrote()


def _read_batch(con: sqlite3.Connection, batch: list[tuple[str, Any]]) -> list[Any]:
    """Queries made together, on the connection's own thread: each one's rows, or its error."""
    outcomes: list[Any] = []
    for sql, params in batch:
        try:
            outcomes.append(con.execute(sql, params).fetchall())
        except Exception as exc:  # noqa: BLE001 - the caller of that query hears it, alone
            outcomes.append(exc)
    return outcomes


def _write_batch(con: sqlite3.Connection, batch: list[tuple[str, Any]]) -> list[Any]:
    """One group-commit batch, on the connection's own thread: each statement's rows (or its
    sqlite3.Error: a failing statement is undone alone, the batch goes on), in one transaction."""
    outcomes: list[Any] = []
    con.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in batch:
            try:
                outcomes.append(con.execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                outcomes.append(exc)
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    return outcomes


async def _on_connection_thread(db: aiosqlite.Connection, fn: Any, *args: Any) -> Any:
    """`fn(sqlite3_connection, *args)` on aiosqlite's thread, in one hand-off.

    Why: every aiosqlite call is a round trip to its thread (a queue put, a wake-up, the result
    handed back through the event loop's self-pipe), which under a burst cost more CPU than the
    SQL; a batch of N statements sent one call at a time made N + 2 trips (BEGIN, COMMIT), now
    one. aiosqlite has no public call for this; `_execute` is the method all of its own calls
    use, and `test_memory` covers group commit, so a change there fails a test, not a burst.
    """
    return await db._execute(fn, db._conn, *args)  # noqa: SLF001
