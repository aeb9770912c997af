"""Threads (investigations and conversations), their readable ids, and the turns in them.

A thread's id is readable (`payments-3`): `thread_id_for_task` hands it out once per task, so a
task resumed after a crash finds its thread again. A turn's text is indexed for recall by the
schema's triggers as it is stored.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from engine.memory.connection import MemoryConnection
from engine.memory.records import ThreadRecord, ThreadStatus, ThreadSummary, TurnRecord
from engine.memory.schema import (
    _THREAD_COLS,
    _TURN_COLS,
    ALLOCATE_THREAD_ID,
    INSERT_TURN,
    _dt,
    _thread,
    _ts,
    _turn,
    turn_params,
)
from engine.models import utcnow


class ThreadStore(MemoryConnection):
    """Threads and their turns."""

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
        async with self._transaction() as db:
            rows = await db.execute_fetchall(
                "SELECT thread_id FROM thread_ids WHERE task_id = ?", (task_id,)
            )
            if rows:  # given earlier (a resumed task)
                thread_id = rows[0][0]
            else:
                rows = await db.execute_fetchall("SELECT last FROM id_counters WHERE stem = ?", (stem,))
                n = (rows[0][0] if rows else 0) + 1
                while await db.execute_fetchall(
                    "SELECT 1 FROM threads WHERE id = ?1 UNION ALL "
                    "SELECT 1 FROM thread_ids WHERE thread_id = ?1",
                    (f"{stem}{n}",),
                ):
                    n += 1
                thread_id = f"{stem}{n}"
                await db.execute(
                    "INSERT INTO thread_ids (task_id, thread_id, stem, n) VALUES (?, ?, ?, ?)",
                    (task_id, thread_id, stem, n),
                )
        return thread_id

    async def create_thread(self, rec: ThreadRecord) -> ThreadRecord:
        """Raises sqlite3.IntegrityError if the id exists. Both statements go through group
        commit (under a burst they share the other writes' transaction and trip to the thread);
        the channel row is idempotent, so the second failing leaves nothing wrong behind."""
        await self._write(
            "INSERT INTO channels (platform, workspace, channel) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (rec.platform, rec.workspace, rec.channel),
        )
        await self._write(
            f"""
            INSERT INTO threads (chan, {_THREAD_COLS})
            VALUES ((SELECT id FROM channels WHERE platform = ? AND workspace = ?
                     AND channel = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (rec.platform, rec.workspace, rec.channel, *self._thread_values(rec)),
        )
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
        """The record of a platform thread (the newest, should there be several). A crew handed
        an investigation's plan works in the investigation's thread: replies there still go to
        the investigation, so crews come last."""
        rows = await self._rows(
            f"""
            SELECT {_THREAD_COLS} FROM threads
            WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ?
            ORDER BY kind = 'crew', created_at DESC LIMIT 1
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
