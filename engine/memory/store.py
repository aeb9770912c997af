"""SQLite memory: tasks, threads, turns, posts and per-channel recall, via one aiosqlite connection.

The schema and the row <-> record conversion live in `engine.memory.schema`; recall's terms, SQL
and ranking in `engine.memory.recall`. This module holds `SQLiteMemory`, which runs them.

Why it is built this way:

- One connection in autocommit mode. Almost every write is a single SQL statement (triggers do the
  bookkeeping), so it is atomic on its own. Those writes go through group commit (`_write`):
  alone, a statement is its own transaction with no separate COMMIT hop; under load, the ones
  that arrived meanwhile share one transaction. The few multi-statement writes hold
  `_write_lock`, and so does each batch, so nothing slips into someone else's transaction.
- `accept_task` uses group commit: the calls that arrive while a batch is being written wait and
  are then written together, as one INSERT over a JSON array, in one transaction.
- WAL checkpoints fsync (~10 ms on this disk) and would land inside some unlucky add_turn. Every
  CHECKPOINT_EVERY writes a PASSIVE checkpoint runs in a worker thread on a short-lived second
  connection (it never blocks the main one); SQLite's automatic checkpoint remains as a backstop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from engine.memory.recall import PER_TERM, _phrase, _recall_sql, excerpt, fts_terms
from engine.memory.records import (
    ForgetResult,
    Recollection,
    StoredTask,
    TaskStatus,
    Placeholder,
    ThreadRecord,
    ThreadStatus,
    ThreadSummary,
    TurnRecord,
)
from engine.memory.schema import (
    _SCHEMA,
    _THREAD_COLS,
    _TURN_COLS,
    ALLOCATE_THREAD_ID,
    INSERT_TURN,
    MIGRATIONS,
    SCHEMA_VERSION,
    _dt,
    _thread,
    _ts,
    _turn,
    turn_params,
)
from engine.models import Accepted, Task, TaskRefused, utcnow

log = logging.getLogger(__name__)

_UNFINISHED = (TaskStatus.ACCEPTED.value, TaskStatus.RUNNING.value)

CHECKPOINT_EVERY = 200  # write transactions between two background WAL checkpoints


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


class SQLiteMemory:
    """The engine's memory. Open with `await SQLiteMemory.open(path)`; `close()` when done."""

    def __init__(self, db: aiosqlite.Connection, path: Path):
        self._db = db
        self.path = path
        self._write_lock = asyncio.Lock()
        self._accept_queue: list[tuple[Task, asyncio.Future[Accepted]]] = []
        self._accept_flusher: asyncio.Task[None] | None = None
        self._write_queue: list[tuple[str, Any, asyncio.Future[list[Any]]]] = []
        self._write_flusher: asyncio.Task[None] | None = None
        self._writes = 0
        self._checkpointer: asyncio.Future[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path) -> SQLiteMemory:
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
            # Checkpoints fsync (~10 ms here): `_checkpoint_soon` runs them beside the hot path;
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
                raise RuntimeError(
                    f"{path}: memory schema version {version}, this code knows {SCHEMA_VERSION}"
                )
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        for flusher in (self._accept_flusher, self._write_flusher):
            if flusher is not None:
                await asyncio.gather(flusher, return_exceptions=True)
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

    async def _rows(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        return list(await self._db.execute_fetchall(sql, params))

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
                        await self._db.execute("BEGIN IMMEDIATE")
                        try:
                            for sql, params, future in batch:
                                try:  # a failing statement is undone alone; the batch goes on
                                    outcomes.append((future, list(await self._db.execute_fetchall(sql, params))))
                                except sqlite3.Error as exc:
                                    outcomes.append((future, exc))
                            await self._db.execute("COMMIT")
                        except BaseException:
                            if self._db.in_transaction:
                                await self._db.execute("ROLLBACK")
                            raise
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

    # -- tasks -----------------------------------------------------------------------------------

    async def accept_task(self, task: Task) -> Accepted:
        """Store the task (group commit); a known (platform, workspace, event_id) is a duplicate."""
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._accept_queue.append((task, future))
        if self._accept_flusher is None or self._accept_flusher.done():
            self._accept_flusher = asyncio.create_task(self._flush_accepts())
        return await future

    async def _flush_accepts(self) -> None:
        while self._accept_queue:
            batch, self._accept_queue = self._accept_queue, []
            try:
                results = await self._accept_batch([task for task, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every caller hears it; flusher goes on
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    @staticmethod
    def _encode_task(task: Task) -> list[str]:
        """The task's row, or TaskRefused when it can never be stored and read back.

        Checked one task at a time, before the batch is written, so that one event the encoder
        refuses (a lone surrogate in its text, a field of the wrong type) is refused alone.
        """
        try:
            body = task.model_dump_json(warnings="error")
            Task.model_validate_json(body)  # what start() will read back after a crash
            row = [task.platform, task.workspace, task.channel, task.event_id, body]
            if not all(isinstance(v, str) for v in row):
                raise TypeError("a key field is not text")
            json.dumps(row, ensure_ascii=False).encode("utf-8")
        except Exception as exc:  # noqa: BLE001 - whatever the encoder refuses is refused
            raise TaskRefused(f"event {str(task.event_id)[:80]!r} cannot be stored: {type(exc).__name__}") from exc
        return row

    async def _accept_batch(self, tasks: list[Task]) -> list[Accepted | BaseException]:
        """Each task's Accepted, or the exception for that task alone.

        Tasks that cannot be encoded are refused first; the rest go in one statement. Should that
        statement fail all the same (a row the database rejects), each is written alone, so the
        others still commit. A transient error (database locked) reaches every caller as it is.
        """
        results: list[Accepted | BaseException | None] = [None] * len(tasks)
        rows: list[list[str]] = []
        good: list[int] = []
        for i, task in enumerate(tasks):
            try:
                rows.append(self._encode_task(task))
                good.append(i)
            except TaskRefused as exc:
                log.warning("%s", exc)
                results[i] = exc
        if rows:
            try:
                accepted: list[Accepted | BaseException] = list(await self._accept_rows(rows))
            except sqlite3.OperationalError as exc:  # locked, busy, disk full: worth retrying
                accepted = [exc] * len(rows)
            except sqlite3.Error:
                accepted = []
                for row in rows:  # find the one the database rejects; the others commit
                    try:
                        accepted += await self._accept_rows([row])
                    except sqlite3.OperationalError as exc:
                        accepted.append(exc)
                    except sqlite3.Error as exc:
                        refused = TaskRefused(f"event {row[3][:80]!r} cannot be stored: {exc}")
                        log.warning("%s", refused)
                        accepted.append(refused)
            for i, result in zip(good, accepted):
                results[i] = result
        return [r for r in results if r is not None]

    async def _accept_rows(self, encoded: list[list[str]]) -> list[Accepted]:
        now = _ts(utcnow())
        rows = json.dumps(encoded, ensure_ascii=False)
        inserted = await self._write(
            """
            INSERT INTO tasks (platform, workspace, channel, event_id, status, body,
                               created_at, updated_at)
            SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'),
                   json_extract(j.value, '$[2]'), json_extract(j.value, '$[3]'),
                   'accepted', json_extract(j.value, '$[4]'), :now, :now
            FROM json_each(:rows) AS j WHERE true ORDER BY j.key
            ON CONFLICT (platform, workspace, event_id) DO NOTHING
            RETURNING id, platform, workspace, event_id
            """,
            {"rows": rows, "now": now},
        )
        new = {(p, w, e): id_ for id_, p, w, e in inserted}
        keys = [(r[0], r[1], r[3]) for r in encoded]
        old: dict[tuple[str, str, str], int] = {}
        missing = [list(k) for k in dict.fromkeys(keys) if k not in new]
        if missing:
            found = await self._rows(
                """
                SELECT t.id, t.platform, t.workspace, t.event_id
                FROM json_each(?) AS j JOIN tasks AS t
                  ON t.platform = json_extract(j.value, '$[0]')
                 AND t.workspace = json_extract(j.value, '$[1]')
                 AND t.event_id = json_extract(j.value, '$[2]')
                """,
                (json.dumps(missing, ensure_ascii=False),),
            )
            old = {(p, w, e): id_ for id_, p, w, e in found}
        results: list[Accepted] = []
        claimed: set[tuple[str, str, str]] = set()
        for key in keys:
            if key in new and key not in claimed:
                claimed.add(key)
                results.append(Accepted(task_id=new[key], duplicate=False))
            elif key in new or key in old:
                results.append(Accepted(task_id=new.get(key) or old[key], duplicate=True))
            else:  # forgotten between the two statements: vanishingly rare, say so plainly
                raise RuntimeError(f"task {key} disappeared while it was being accepted")
        return results

    async def set_task_status(
        self, task_id: int, status: TaskStatus, error: str | None = None
    ) -> None:
        """Raises KeyError for an unknown task (e.g. its channel was forgotten meanwhile)."""
        done = await self._write(
            "UPDATE tasks SET status = ?, error = ?, updated_at = ? WHERE id = ? RETURNING id",
            (TaskStatus(status).value, error, _ts(utcnow()), task_id),
        )
        if not done:
            raise KeyError(f"unknown task {task_id}")

    async def get_task(self, task_id: int) -> StoredTask | None:
        rows = await self._rows(
            "SELECT id, body, status, error FROM tasks WHERE id = ?", (task_id,)
        )
        return self._stored_task(rows[0]) if rows else None

    async def unfinished_tasks(self) -> list[StoredTask]:
        rows = await self._rows(
            "SELECT id, body, status, error FROM tasks WHERE status IN (?, ?) ORDER BY id",
            _UNFINISHED,
        )
        return [self._stored_task(r) for r in rows]

    @staticmethod
    def _stored_task(row: Iterable[Any]) -> StoredTask:
        id_, body, status, error = row
        return StoredTask(id=id_, task=Task.model_validate_json(body), status=status, error=error)

    # -- threads ---------------------------------------------------------------------------------

    async def thread_id_for_task(self, task_id: int, stem: str) -> str:
        """The id of the thread that task `task_id` opens: `{stem}{n}`, the next n for the stem.

        Given once per task and the same on every later call (a task resumed after a crash finds
        its thread under the same id). Numbers are never handed out twice, even after the
        channel is forgotten; one already taken by some other thread (a version 1 id such as
        `inv-8`) is skipped, so ids stay unique across platforms and workspaces.
        """
        try:  # the usual case: one statement, through group commit
            rows = await self._write(ALLOCATE_THREAD_ID, {"task": task_id, "stem": stem})
        except sqlite3.IntegrityError:  # the next id is taken already: find a free one below
            rows = []  # (no row at all: the task has its id already, or a thread has that id)
        if rows:
            return rows[0][0]
        async with self._write_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = await self._db.execute_fetchall(
                    "SELECT thread_id FROM thread_ids WHERE task_id = ?", (task_id,)
                )
                if rows:  # given earlier (a resumed task)
                    thread_id = rows[0][0]
                else:
                    rows = await self._db.execute_fetchall(
                        "SELECT last FROM id_counters WHERE stem = ?", (stem,)
                    )
                    n = (rows[0][0] if rows else 0) + 1
                    while await self._db.execute_fetchall(
                        "SELECT 1 FROM threads WHERE id = ?1 UNION ALL "
                        "SELECT 1 FROM thread_ids WHERE thread_id = ?1",
                        (f"{stem}{n}",),
                    ):
                        n += 1
                    thread_id = f"{stem}{n}"
                    await self._db.execute(
                        "INSERT INTO thread_ids (task_id, thread_id, stem, n) VALUES (?, ?, ?, ?)",
                        (task_id, thread_id, stem, n),
                    )
                await self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    await self._db.execute("ROLLBACK")
                raise
        self._wrote()
        return thread_id

    async def create_thread(self, rec: ThreadRecord) -> ThreadRecord:
        """Raises sqlite3.IntegrityError if the id exists."""
        async with self._write_lock:
            await self._db.execute(
                "INSERT INTO channels (platform, workspace, channel) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (rec.platform, rec.workspace, rec.channel),
            )
            await self._db.execute(
                f"""
                INSERT INTO threads (chan, {_THREAD_COLS})
                VALUES ((SELECT id FROM channels WHERE platform = ? AND workspace = ?
                         AND channel = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (rec.platform, rec.workspace, rec.channel, *self._thread_values(rec)),
            )
        self._wrote()
        return rec

    @staticmethod
    def _thread_values(rec: ThreadRecord) -> tuple[Any, ...]:
        return (
            rec.id, rec.kind.value, rec.platform, rec.workspace, rec.channel, rec.thread,
            rec.title, rec.inv_type, rec.phase.value, rec.status.value, rec.lead, rec.turn_count,
            _ts(rec.created_at), _ts(rec.updated_at),
        )

    async def update_thread(self, rec: ThreadRecord) -> ThreadRecord:
        """Save every field but the id, place and created_at; updated_at becomes now.

        Raises KeyError for an unknown thread, ValueError if the record names another channel
        (a thread never moves: its turns are indexed under its channel).
        """
        now = utcnow()
        done = await self._write(
            """
            UPDATE threads SET kind = ?, thread = ?, title = ?, inv_type = ?, phase = ?,
                status = ?, lead = ?, turn_count = ?, updated_at = ?
            WHERE id = ? AND platform = ? AND workspace = ? AND channel = ?
            RETURNING id
            """,
            (
                rec.kind.value, rec.thread, rec.title, rec.inv_type, rec.phase.value,
                rec.status.value, rec.lead, rec.turn_count, _ts(now),
                rec.id, rec.platform, rec.workspace, rec.channel,
            ),
        )
        if not done:
            if await self.get_thread(rec.id) is None:
                raise KeyError(f"unknown thread {rec.id}")
            raise ValueError(f"thread {rec.id} cannot move to another channel")
        return rec.model_copy(update={"updated_at": now})

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        rows = await self._rows(f"SELECT {_THREAD_COLS} FROM threads WHERE id = ?", (thread_id,))
        return _thread(rows[0]) if rows else None

    async def find_thread(
        self, platform: str, workspace: str, channel: str, thread: str
    ) -> ThreadRecord | None:
        """The record of a platform thread (the newest, should there be several)."""
        rows = await self._rows(
            f"""
            SELECT {_THREAD_COLS} FROM threads
            WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?
            ORDER BY created_at DESC LIMIT 1
            """,
            (platform, workspace, channel, thread),
        )
        return _thread(rows[0]) if rows else None

    async def list_threads(
        self,
        platform: str,
        workspace: str,
        channel: str,
        *,
        statuses: set[ThreadStatus] | None = None,
    ) -> list[ThreadSummary]:
        """Newest first. `turns` is the record's turn_count (persona turns)."""
        params: list[Any] = [platform, workspace, channel]
        where = ""
        if statuses is not None:
            if not statuses:
                return []
            values = sorted(ThreadStatus(s).value for s in statuses)
            where = f" AND status IN ({', '.join('?' * len(values))})"
            params += values
        rows = await self._rows(
            f"""
            SELECT id, kind, title, phase, status, lead, turn_count, updated_at FROM threads
            WHERE platform = ? AND workspace = ? AND channel = ?{where}
            ORDER BY updated_at DESC, id
            """,
            params,
        )
        return [
            ThreadSummary(
                id=r[0], kind=r[1], title=r[2], phase=r[3], status=r[4], lead=r[5], turns=r[6],
                updated_at=_dt(r[7]),
            )
            for r in rows
        ]

    async def stalled_threads(self, older_than: datetime) -> list[ThreadRecord]:
        """ACTIVE or PAUSED investigations not updated since `older_than`, oldest first."""
        rows = await self._rows(
            f"""
            SELECT {_THREAD_COLS} FROM threads
            WHERE kind = 'investigation' AND status IN ('active', 'paused') AND updated_at < ?
            ORDER BY updated_at
            """,
            (_ts(older_than),),
        )
        return [_thread(r) for r in rows]

    # -- turns -----------------------------------------------------------------------------------

    async def add_turn(self, turn: TurnRecord) -> TurnRecord:
        """Store a turn (next seq in its thread) and index its text. KeyError: unknown thread."""
        rows = await self._write(INSERT_TURN, turn_params(turn))
        if not rows:
            raise KeyError(f"unknown thread {turn.thread_id}")
        id_, seq = rows[0]
        return turn.model_copy(update={"id": id_, "seq": seq})

    async def turns(self, thread_id: str) -> list[TurnRecord]:
        rows = await self._rows(
            f"SELECT {_TURN_COLS} FROM turns WHERE thread_id = ? ORDER BY seq", (thread_id,)
        )
        return [_turn(r) for r in rows]

    async def turn_for_task(self, task_id: int, step: int, role: str = "persona") -> TurnRecord | None:
        """The turn (a persona's by default) already stored for this task and step, if any."""
        rows = await self._rows(
            f"""
            SELECT {_TURN_COLS} FROM turns
            WHERE task_id = ? AND step = ? AND role = ? ORDER BY id DESC LIMIT 1
            """,
            (task_id, step, str(role)),
        )
        return _turn(rows[0]) if rows else None

    async def count_turns(self, platform: str, workspace: str, channel: str) -> int:
        rows = await self._rows(
            """
            SELECT count(*) FROM turns JOIN threads ON threads.id = turns.thread_id
            WHERE threads.platform = ? AND threads.workspace = ? AND threads.channel = ?
            """,
            (platform, workspace, channel),
        )
        return rows[0][0]

    # -- posts -----------------------------------------------------------------------------------

    async def record_post(
        self,
        key: str,
        *,
        task_id: int | None,
        platform: str,
        workspace: str,
        channel: str,
        thread: str | None,
        message_id: str,
        persona: str,
        thread_id: str | None,
    ) -> None:
        """Idempotent. A key posted twice keeps both message ids; `post_for_key` gives the first."""
        await self._write(
            """
            INSERT INTO posts (key, task_id, platform, workspace, channel, thread, message_id,
                               persona, thread_id, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
            """,
            (key, task_id, platform, workspace, channel, thread, message_id, persona, thread_id,
             _ts(utcnow())),
        )

    async def post_for_key(self, key: str) -> str | None:
        rows = await self._rows(
            "SELECT message_id FROM posts WHERE key = ? ORDER BY id LIMIT 1", (key,)
        )
        return rows[0][0] if rows else None

    async def record_intent(
        self, key: str, *, task_id: int | None, platform: str, workspace: str, channel: str, thread: str | None
    ) -> None:
        """Before a post goes out: a resumed task that finds an intent without a post looks for
        the message on the platform before posting again (the platform may have taken it)."""
        await self._write(
            """
            INSERT INTO intents (key, task_id, platform, workspace, channel, thread, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
            """,
            (key, task_id, platform, workspace, channel, thread, _ts(utcnow())),
        )

    async def has_intent(self, key: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM intents WHERE key = ?", (key,)))

    # -- placeholders ----------------------------------------------------------------------------

    _PLACEHOLDER_COLS = "key, task_id, platform, workspace, channel, thread, persona, message_id"

    @staticmethod
    def _placeholder(row: Iterable[Any]) -> Placeholder:
        key, task_id, platform, workspace, channel, thread, persona, message_id = row
        return Placeholder(
            key=key, task_id=task_id, platform=platform, workspace=workspace, channel=channel,
            thread=thread or None, persona=persona, message_id=message_id,
        )

    async def placeholder_for(
        self, platform: str, workspace: str, channel: str, thread: str | None, persona: str
    ) -> Placeholder | None:
        """The placeholder showing (or about to show) for `persona` in this thread, if any."""
        rows = await self._rows(
            f"""
            SELECT {self._PLACEHOLDER_COLS} FROM placeholders
            WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ? AND persona = ?
            """,
            (platform, workspace, channel, thread or "", persona),
        )
        return self._placeholder(rows[0]) if rows else None

    async def placeholders(self, task_id: int | None = None) -> list[Placeholder]:
        """Every placeholder (of one task when given), oldest first."""
        where, params = ("WHERE task_id = ?", (task_id,)) if task_id is not None else ("", ())
        rows = await self._rows(
            f"SELECT {self._PLACEHOLDER_COLS} FROM placeholders {where} ORDER BY created_at, key", params
        )
        return [self._placeholder(r) for r in rows]

    async def record_placeholder(self, p: Placeholder) -> None:
        """Write the row before the placeholder is posted (message_id None), then again with
        its id once posted. One placeholder per persona and thread: the newest row wins."""
        await self._write(
            """
            INSERT INTO placeholders (key, task_id, platform, workspace, channel, thread, persona,
                                      message_id, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (platform, workspace, channel, thread, persona) DO UPDATE SET
                key = excluded.key, task_id = excluded.task_id, message_id = excluded.message_id
            """,
            (p.key, p.task_id, p.platform, p.workspace, p.channel, p.thread or "", p.persona,
             p.message_id, _ts(utcnow())),
        )

    async def drop_placeholder(self, key: str) -> None:
        """The placeholder was replaced (or never shown): forget it."""
        await self._write("DELETE FROM placeholders WHERE key = ?", (key,))

    async def persona_for_message(
        self, platform: str, workspace: str, channel: str, message_id: str
    ) -> str | None:
        rows = await self._rows(
            """
            SELECT persona FROM posts
            WHERE platform = ? AND workspace = ? AND channel = ? AND message_id = ?
            ORDER BY id LIMIT 1
            """,
            (platform, workspace, channel, message_id),
        )
        return rows[0][0] if rows else None

    # -- channel memory --------------------------------------------------------------------------

    async def recall(
        self,
        platform: str,
        workspace: str,
        channel: str,
        query: str,
        *,
        exclude_thread: str | None = None,
        limit: int = 5,
    ) -> list[Recollection]:
        """Earlier turns of this channel (never another one) that bear on `query`, best first.

        How candidates are found and scored: see `engine.memory.recall`. One SQL statement, one
        hop to the database thread. Weird input never raises: a query without usable words, or
        anything SQLite rejects, gives [].
        """
        try:
            terms = fts_terms(query)
            if not terms or limit <= 0:
                return []
            rows = await self._rows(
                _recall_sql(len(terms)),
                {
                    "p": platform, "w": workspace, "c": channel, "ex": exclude_thread,
                    "k": PER_TERM, "limit": min(int(limit), 100),
                    **{f"q{i}": _phrase(t) for i, t in enumerate(terms)},
                },
            )
        except (sqlite3.Error, UnicodeError, ValueError, OverflowError) as exc:
            log.warning("recall failed (%s): %.80r", exc, query)
            return []
        return [
            Recollection(
                thread_id=thread_id, title=title, author=author, mode=mode,
                text=excerpt(text, terms), created_at=_dt(created_at), score=score,
            )
            for score, thread_id, title, author, mode, created_at, text in rows
        ]

    async def export_channel(self, platform: str, workspace: str, channel: str) -> dict:
        """Everything the channel remembers, as plain JSON-ready data."""
        place = (platform, workspace, channel)
        threads = await self._rows(
            f"SELECT {_THREAD_COLS} FROM threads "
            "WHERE platform = ? AND workspace = ? AND channel = ? ORDER BY created_at, id",
            place,
        )
        turns = await self._rows(
            f"""
            SELECT {', '.join('t.' + c.strip() for c in _TURN_COLS.split(','))}
            FROM turns AS t JOIN threads AS th ON th.id = t.thread_id
            WHERE th.platform = ? AND th.workspace = ? AND th.channel = ?
            ORDER BY t.thread_id, t.seq
            """,
            place,
        )
        posts = await self._rows(
            "SELECT key, task_id, thread, message_id, persona, thread_id, created_at FROM posts "
            "WHERE platform = ? AND workspace = ? AND channel = ? ORDER BY id",
            place,
        )
        tasks = await self._rows(
            "SELECT id, body, status, error FROM tasks "
            "WHERE platform = ? AND workspace = ? AND channel = ? ORDER BY id",
            place,
        )
        by_thread: dict[str, list[dict[str, Any]]] = {}
        for row in turns:
            turn = _turn(row)
            by_thread.setdefault(turn.thread_id, []).append(turn.model_dump(mode="json"))
        return {
            "platform": platform,
            "workspace": workspace,
            "channel": channel,
            "exported_at": _ts(utcnow()),
            "threads": [
                {**_thread(r).model_dump(mode="json"), "turns": by_thread.get(r[0], [])}
                for r in threads
            ],
            "posts": [
                dict(zip(("key", "task_id", "thread", "message_id", "persona", "thread_id",
                          "created_at"), r))
                for r in posts
            ],
            "tasks": [self._stored_task(r).model_dump(mode="json") for r in tasks],
        }

    async def forget_channel(self, platform: str, workspace: str, channel: str) -> ForgetResult:
        """Delete the channel's threads, turns (and their index entries), posts and tasks."""
        place = (platform, workspace, channel)
        async with self._write_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = await self._db.execute(
                    "DELETE FROM turns WHERE thread_id IN (SELECT id FROM threads "
                    "WHERE platform = ? AND workspace = ? AND channel = ?)",
                    place,
                )
                n_turns = cur.rowcount
                cur = await self._db.execute(
                    "DELETE FROM threads WHERE platform = ? AND workspace = ? AND channel = ?",
                    place,
                )
                n_threads = cur.rowcount
                # the forgotten tasks' ids may be given to new tasks: their threads' ids must not
                await self._db.execute(
                    "DELETE FROM thread_ids WHERE task_id IN (SELECT id FROM tasks "
                    "WHERE platform = ? AND workspace = ? AND channel = ?)",
                    place,
                )
                await self._db.execute(
                    "DELETE FROM posts WHERE platform = ? AND workspace = ? AND channel = ?", place
                )
                for table in ("intents", "placeholders"):
                    await self._db.execute(
                        f"DELETE FROM {table} WHERE platform = ? AND workspace = ? AND channel = ?", place
                    )
                cur = await self._db.execute(
                    "DELETE FROM tasks WHERE platform = ? AND workspace = ? AND channel = ?", place
                )
                n_tasks = cur.rowcount
                await self._db.execute(
                    "DELETE FROM channels WHERE platform = ? AND workspace = ? AND channel = ?",
                    place,
                )
                await self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    await self._db.execute("ROLLBACK")
                raise
        self._wrote()
        return ForgetResult(threads=n_threads, turns=n_turns, tasks=n_tasks)
