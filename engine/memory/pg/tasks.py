"""PostgreSQL: accepting tasks (exactly once per platform event, across replicas) and their status.

The twin of `engine.memory.tasks.TaskStore`. Exactly-once is the unique key (platform,
workspace, event_id) and `INSERT ... ON CONFLICT DO NOTHING`: whichever replica inserts the row
first is told "new", every other caller, in this process or another, is told "duplicate" with
the same task id. Never check-then-insert.

No group commit here: PostgreSQL takes concurrent writers, so each accept is its own statement on
a pooled connection (SQLite batches because it has one). A task is encoded and checked exactly as
on SQLite (`TaskStore._encode_task`), so the same tasks are refused on both.
"""

from __future__ import annotations

import logging

import asyncpg

from engine.memory.pg.connection import PgConnection
from engine.memory.records import StoredTask, TaskStatus
from engine.memory.schema import _ts
from engine.memory.tasks import TASK_COLS, TaskStore, stored_task
from engine.models import Accepted, Task, TaskRefused, utcnow

log = logging.getLogger(__name__)

#: Errors that are about the row itself (text PostgreSQL cannot store, a key too long for its
#: index, a value a constraint or trigger rejects): retrying cannot help, so the task is refused.
#: Anything else (the server away, a deadlock, too many connections) is raised as it is, so the
#: platform retries.
ROW_REJECTED = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
    asyncpg.exceptions.RaiseError,
)

#: One statement: the new row's id, or (when the key is known) the existing row's. Should the
#: existing row have been inserted by a transaction that committed after this statement began,
#: the statement's snapshot cannot see it and no row comes back: `_accept` then reads it again.
_ACCEPT = """
WITH new AS (
    INSERT INTO tasks (platform, workspace, channel, event_id, status, body, created_at, updated_at)
    VALUES ($1, $2, $3, $4, 'accepted', $5, $6, $6)
    ON CONFLICT (platform, workspace, event_id) DO NOTHING
    RETURNING id
)
SELECT id, false AS duplicate FROM new
UNION ALL
SELECT id, true FROM tasks
WHERE platform = $1 AND workspace = $2 AND event_id = $4 AND NOT EXISTS (SELECT 1 FROM new)
"""

_EXISTING = "SELECT id FROM tasks WHERE platform = $1 AND workspace = $2 AND event_id = $3"

_UNFINISHED = (TaskStatus.ACCEPTED.value, TaskStatus.RUNNING.value)


class PgTaskStore(PgConnection):
    """Tasks: accepted once (across every replica), then their status until done or failed."""

    async def accept_task(self, task: Task) -> Accepted:
        """Store the task; a known (platform, workspace, event_id) is a duplicate.

        Raises TaskRefused for a task that can never be stored (the encoder refuses it, or
        PostgreSQL rejects its row: see ROW_REJECTED); transient errors as they are.
        """
        try:
            row = TaskStore._encode_task(task)
        except TaskRefused as exc:
            log.warning("%s", exc)
            raise
        platform, workspace, channel, event_id, body = row
        if any("\x00" in value for value in row):  # PostgreSQL's text cannot hold NUL
            refused = TaskRefused(f"event {event_id[:80]!r} cannot be stored: it holds a NUL character")
            log.warning("%s", refused)
            raise refused
        try:
            return await self._accept(platform, workspace, channel, event_id, body)
        except ROW_REJECTED as exc:
            refused = TaskRefused(f"event {event_id[:80]!r} cannot be stored: {type(exc).__name__}")
            log.warning("%s (%s)", refused, exc)
            raise refused from exc

    async def _accept(self, platform: str, workspace: str, channel: str, event_id: str, body: str) -> Accepted:
        rows = await self._write(_ACCEPT, platform, workspace, channel, event_id, body, _ts(utcnow()))
        if rows:
            return Accepted(task_id=rows[0]["id"], duplicate=rows[0]["duplicate"])
        # inserted meanwhile by another connection (see _ACCEPT): a fresh snapshot sees it
        rows = await self._rows(_EXISTING, platform, workspace, event_id)
        if not rows:  # forgotten between the two statements: vanishingly rare, say so plainly
            raise RuntimeError(f"task {(platform, workspace, event_id)} disappeared while it was being accepted")
        return Accepted(task_id=rows[0]["id"], duplicate=True)

    async def set_task_status(self, task_id: int, status: TaskStatus, error: str | None = None) -> None:
        """Raises KeyError for an unknown task (e.g. its channel was forgotten meanwhile)."""
        done = await self._write(
            "UPDATE tasks SET status = $1, error = $2, updated_at = $3 WHERE id = $4 RETURNING id",
            TaskStatus(status).value, None if error is None else error.replace("\x00", "\ufffd"),
            _ts(utcnow()), task_id,
        )
        if not done:
            raise KeyError(f"unknown task {task_id}")

    async def get_task(self, task_id: int) -> StoredTask | None:
        rows = await self._rows(f"SELECT {TASK_COLS} FROM tasks WHERE id = $1", task_id)
        return stored_task(rows[0]) if rows else None

    async def unfinished_tasks(self) -> list[StoredTask]:
        rows = await self._rows(
            f"SELECT {TASK_COLS} FROM tasks WHERE status = ANY($1::text[]) ORDER BY id", list(_UNFINISHED)
        )
        return [stored_task(r) for r in rows]
