"""Channel memory: what a channel remembers, as people see it: recall, export, forget.

Recall's terms, SQL and ranking live in `engine.memory.recall`; this module runs them. A channel
never sees another's memory, and forgetting one touches no other.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from engine.memory.connection import MemoryConnection
from engine.memory.recall import PER_TERM, _phrase, _recall_sql, excerpt, fts_terms
from engine.memory.records import ForgetResult, Recollection
from engine.memory.schema import _THREAD_COLS, _TURN_COLS, _dt, _thread, _ts, _turn
from engine.memory.tasks import TASK_COLS, stored_task
from engine.models import utcnow

log = logging.getLogger(__name__)


class ChannelMemory(MemoryConnection):
    """A channel's memory as a whole."""

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
            f"SELECT {TASK_COLS} FROM tasks "
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
            "tasks": [stored_task(r).model_dump(mode="json") for r in tasks],
        }

    async def forget_channel(self, platform: str, workspace: str, channel: str) -> ForgetResult:
        """Delete the channel's threads, turns (and their index entries), posts and tasks."""
        place = (platform, workspace, channel)
        async with self._transaction() as db:
            cur = await db.execute(
                "DELETE FROM turns WHERE thread_id IN (SELECT id FROM threads "
                "WHERE platform = ? AND workspace = ? AND channel = ?)",
                place,
            )
            n_turns = cur.rowcount
            cur = await db.execute(
                "DELETE FROM threads WHERE platform = ? AND workspace = ? AND channel = ?",
                place,
            )
            n_threads = cur.rowcount
            # the forgotten tasks' ids may be given to new tasks: their threads' ids must not
            await db.execute(
                "DELETE FROM thread_ids WHERE task_id IN (SELECT id FROM tasks "
                "WHERE platform = ? AND workspace = ? AND channel = ?)",
                place,
            )
            await db.execute(
                "DELETE FROM posts WHERE platform = ? AND workspace = ? AND channel = ?", place
            )
            for table in ("intents", "placeholders"):
                await db.execute(
                    f"DELETE FROM {table} WHERE platform = ? AND workspace = ? AND channel = ?", place
                )
            cur = await db.execute(
                "DELETE FROM tasks WHERE platform = ? AND workspace = ? AND channel = ?", place
            )
            n_tasks = cur.rowcount
            await db.execute(
                "DELETE FROM channels WHERE platform = ? AND workspace = ? AND channel = ?",
                place,
            )
        return ForgetResult(threads=n_threads, turns=n_turns, tasks=n_tasks)
