"""What the operator API asks the memory: a liveness query, a platform's tasks by filter (newest
first, with a keyset cursor), and what a task produced (its turns, its thread). Kept apart from
the hot-path stores: only the API calls these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.memory.connection import MemoryConnection
from engine.memory.records import StoredTask, ThreadRecord, TurnRecord
from engine.memory.schema import _THREAD_COLS, _TURN_COLS, _dt, _thread, _ts, _turn
from engine.memory.tasks import TASK_COLS, stored_task


@dataclass(frozen=True)
class TaskRow:
    stored: StoredTask
    created_at: datetime
    updated_at: datetime


class ApiQueries(MemoryConnection):
    async def ping(self) -> None:
        """Raises when the database does not answer."""
        await self._rows("SELECT 1")

    async def api_task(self, platform: str, task_id: int) -> TaskRow | None:
        rows = await self._rows(
            f"SELECT {TASK_COLS}, created_at, updated_at FROM tasks WHERE id = ? AND platform = ?", (task_id, platform)
        )
        return _task_row(rows[0]) if rows else None

    async def api_task_by_event(self, platform: str, workspace: str, event_id: str) -> TaskRow | None:
        rows = await self._rows(
            f"SELECT {TASK_COLS}, created_at, updated_at FROM tasks WHERE platform = ? AND workspace = ? AND event_id = ?",
            (platform, workspace, event_id),
        )
        return _task_row(rows[0]) if rows else None

    async def api_tasks(
        self, platform: str, *, status: str | None = None, channel: str | None = None, persona: str | None = None,
        since: datetime | None = None, before_id: int | None = None, limit: int = 50,
    ) -> list[TaskRow]:
        """Newest first; `before_id` continues a listing (the last id of the previous page)."""
        where, params = ["platform = ?"], [platform]
        if status:
            where.append("status = ?")
            params.append(status)
        if channel:
            where.append("channel = ?")
            params.append(channel)
        if persona:
            where.append("(lower(json_extract(body, '$.persona')) = lower(?) OR EXISTS (SELECT 1 FROM turns "
                         "WHERE turns.task_id = tasks.id AND turns.role = 'persona' AND lower(turns.author) = lower(?)))")
            params += [persona, persona]
        if since is not None:
            where.append("created_at >= ?")
            params.append(_ts(since))
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        rows = await self._rows(
            f"SELECT {TASK_COLS}, created_at, updated_at FROM tasks WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [_task_row(r) for r in rows]

    async def task_turns(self, task_id: int) -> list[TurnRecord]:
        """The persona turns this task produced, in order (what it replied)."""
        rows = await self._rows(
            f"SELECT {_TURN_COLS} FROM turns WHERE task_id = ? AND role = 'persona' ORDER BY id", (task_id,)
        )
        return [_turn(r) for r in rows]

    async def task_thread(self, task_id: int) -> ThreadRecord | None:
        """The thread (investigation or conversation) the task worked on, if it got that far."""
        rows = await self._rows(
            f"""
            SELECT {_THREAD_COLS} FROM threads WHERE id = coalesce(
                (SELECT thread_id FROM thread_ids WHERE task_id = :t),
                (SELECT thread_id FROM turns WHERE task_id = :t ORDER BY id LIMIT 1))
            """,
            {"t": task_id},
        )
        return _thread(rows[0]) if rows else None


def _task_row(row) -> TaskRow:
    *task, created, updated = row
    return TaskRow(stored=stored_task(task), created_at=_dt(created), updated_at=_dt(updated))
