"""PostgreSQL: the part of the memory that `engine.memory.api_queries` is for SQLite (ApiQueries):
a liveness query, a platform's tasks by filter (newest first, keyset cursor), and what a task
produced. Only the operator API calls these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.memory.api_queries import TaskRow, _task_row
from engine.memory.pg.connection import PgConnection
from engine.memory.records import ThreadRecord, TurnRecord
from engine.memory.schema import _THREAD_COLS, _TURN_COLS, _thread, _ts, _turn
from engine.memory.tasks import TASK_COLS


class PgApiQueries(PgConnection):
    async def ping(self) -> None:
        """Raises when the database does not answer."""
        await self._rows("SELECT 1")

    async def api_task(self, platform: str, task_id: int) -> TaskRow | None:
        rows = await self._rows(
            f"SELECT {TASK_COLS}, created_at, updated_at FROM tasks WHERE id = $1 AND platform = $2", task_id, platform
        )
        return _task_row(rows[0]) if rows else None

    async def api_task_by_event(self, platform: str, workspace: str, event_id: str) -> TaskRow | None:
        rows = await self._rows(
            f"SELECT {TASK_COLS}, created_at, updated_at FROM tasks "
            "WHERE platform = $1 AND workspace = $2 AND event_id = $3",
            platform, workspace, event_id,
        )
        return _task_row(rows[0]) if rows else None

    async def api_tasks(
        self, platform: str, *, status: str | None = None, channel: str | None = None, persona: str | None = None,
        since: datetime | None = None, before_id: int | None = None, limit: int = 50,
    ) -> list[TaskRow]:
        """Newest first; `before_id` continues a listing (the last id of the previous page)."""
        params: list[Any] = [platform]

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        where = ["platform = $1"]
        if status:
            where.append(f"status = {param(status)}")
        if channel:
            where.append(f"channel = {param(channel)}")
        if persona:
            p = param(persona)
            where.append(f"(lower(body::jsonb ->> 'persona') = lower({p}) OR EXISTS (SELECT 1 FROM turns "
                         f"WHERE turns.task_id = tasks.id AND turns.role = 'persona' AND lower(turns.author) = lower({p})))")
        if since is not None:
            where.append(f"created_at >= {param(_ts(since))}")
        if before_id is not None:
            where.append(f"id < {param(before_id)}")
        rows = await self._rows(
            f"SELECT {TASK_COLS}, created_at, updated_at FROM tasks WHERE {' AND '.join(where)} "
            f"ORDER BY id DESC LIMIT {param(limit)}",
            *params,
        )
        return [_task_row(r) for r in rows]

    async def task_turns(self, task_id: int) -> list[TurnRecord]:
        """The persona turns this task produced, in order (what it replied)."""
        rows = await self._rows(
            f"SELECT {_TURN_COLS} FROM turns WHERE task_id = $1 AND role = 'persona' ORDER BY id", task_id
        )
        return [_turn(r) for r in rows]

    async def task_thread(self, task_id: int) -> ThreadRecord | None:
        """The thread (investigation or conversation) the task worked on, if it got that far."""
        rows = await self._rows(
            f"""
            SELECT {_THREAD_COLS} FROM threads WHERE id = coalesce(
                (SELECT thread_id FROM thread_ids WHERE task_id = $1),
                (SELECT thread_id FROM turns WHERE task_id = $1 ORDER BY id LIMIT 1))
            """,
            task_id,
        )
        return _thread(rows[0]) if rows else None
