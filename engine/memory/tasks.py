"""Accepting tasks (exactly once per platform event) and keeping their status.

`accept_task` uses group commit: the calls that arrive while a batch is being written wait and
are then written together, as one INSERT over a JSON array, in one transaction. A task the
encoder refuses is refused alone (`TaskRefused`); the others in its batch still commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiosqlite

from engine.memory.connection import MemoryConnection
from engine.memory.records import StoredTask, TaskStatus
from engine.memory.schema import _ts
from engine.models import Accepted, Task, TaskRefused, utcnow

log = logging.getLogger(__name__)

_UNFINISHED = (TaskStatus.ACCEPTED.value, TaskStatus.RUNNING.value)

#: The columns `stored_task` reads, in its order.
TASK_COLS = "id, body, status, error"


def stored_task(row: Iterable[Any]) -> StoredTask:
    id_, body, status, error = row
    return StoredTask(id=id_, task=Task.model_validate_json(body), status=status, error=error)


class TaskStore(MemoryConnection):
    """Tasks: accepted once, then their status until done or failed."""

    def __init__(self, db: aiosqlite.Connection, path: Path):
        super().__init__(db, path)
        self._accept_queue: list[tuple[Task, asyncio.Future[Accepted]]] = []
        self._accept_flusher: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._accept_flusher is not None:  # its writes go through group commit: first
            await asyncio.gather(self._accept_flusher, return_exceptions=True)
        await super().close()

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
        except Exception as exc:  # whatever the encoder refuses is refused
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
        rows = await self._rows(f"SELECT {TASK_COLS} FROM tasks WHERE id = ?", (task_id,))
        return stored_task(rows[0]) if rows else None

    async def unfinished_tasks(self) -> list[StoredTask]:
        rows = await self._rows(
            f"SELECT {TASK_COLS} FROM tasks WHERE status IN (?, ?) ORDER BY id", _UNFINISHED
        )
        return [stored_task(r) for r in rows]
