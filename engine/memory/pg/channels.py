"""PostgreSQL: a channel's memory as a whole: recall, export, forget.

The twin of `engine.memory.channels.ChannelMemory`. Recall's statement and why it is built so:
`engine.memory.pg.recall`. A channel never sees another's memory (recall reads only its own doc
range), and forgetting one removes exactly what SQLite's forget removes, in one transaction.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from engine.memory.pg.connection import PgConnection
from engine.memory.pg.recall import RECALL, WINDOW
from engine.memory.recall import PER_TERM, excerpt, fts_terms
from engine.memory.records import ForgetResult, Recollection
from engine.memory.schema import _THREAD_COLS, _TURN_COLS, _dt, _thread, _ts, _turn
from engine.memory.tasks import TASK_COLS, stored_task
from engine.models import utcnow

log = logging.getLogger(__name__)

_PLACE = "platform = $1 AND workspace = $2 AND channel = $3"


def _count(status: str) -> int:
    """The row count of a command's status ("DELETE 3" -> 3)."""
    return int(status.rsplit(" ", 1)[-1])


class PgChannelMemory(PgConnection):
    """A channel's memory as a whole."""

    #: How many of a channel's newest turns recall reads before it asks the GIN index (see
    #: engine.memory.pg.recall). The results do not depend on it, only the cost does.
    recall_window: int = WINDOW

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

        Weird input never raises: a query without usable words, or anything PostgreSQL rejects,
        gives [] (and a warning in the log), as on SQLite. (A lost connection is raised.)
        """
        try:
            terms = fts_terms(query)
            if not terms or limit <= 0:
                return []
            rows = await self._rows(
                RECALL, platform, workspace, channel, exclude_thread, PER_TERM, min(int(limit), 100), terms,
                self.recall_window,
            )
        except (asyncpg.PostgresError, UnicodeError, ValueError, OverflowError) as exc:
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
        # one snapshot (repeatable read), so that its threads, turns, posts and tasks agree
        async with self._pool.acquire() as con, con.transaction(isolation="repeatable_read", readonly=True):
            threads = await con.fetch(f"SELECT {_THREAD_COLS} FROM threads WHERE {_PLACE} ORDER BY created_at, id", *place)
            turns = await con.fetch(
                f"""
                SELECT {', '.join('t.' + c.strip() for c in _TURN_COLS.split(','))}
                FROM turns AS t JOIN threads AS th ON th.id = t.thread_id
                WHERE th.platform = $1 AND th.workspace = $2 AND th.channel = $3
                ORDER BY t.thread_id, t.seq
                """,
                *place,
            )
            posts = await con.fetch(
                "SELECT key, task_id, thread, message_id, persona, thread_id, created_at FROM posts "
                f"WHERE {_PLACE} ORDER BY id",
                *place,
            )
            tasks = await con.fetch(f"SELECT {TASK_COLS} FROM tasks WHERE {_PLACE} ORDER BY id", *place)
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
                {**_thread(r).model_dump(mode="json"), "turns": by_thread.get(r[0], [])} for r in threads
            ],
            "posts": [
                dict(zip(("key", "task_id", "thread", "message_id", "persona", "thread_id", "created_at"), r))
                for r in posts
            ],
            "tasks": [stored_task(r).model_dump(mode="json") for r in tasks],
        }

    async def forget_channel(self, platform: str, workspace: str, channel: str) -> ForgetResult:
        """Delete the channel's threads, turns (and their index entries), posts, intents,
        placeholders and tasks, and its channel row; the thread-id counters stay (an id is never
        given again)."""
        place = (platform, workspace, channel)
        async with self._transaction() as con:
            n_turns = _count(await con.execute(
                f"DELETE FROM turns WHERE thread_id IN (SELECT id FROM threads WHERE {_PLACE})", *place
            ))
            n_threads = _count(await con.execute(f"DELETE FROM threads WHERE {_PLACE}", *place))
            await con.execute(
                f"DELETE FROM thread_ids WHERE task_id IN (SELECT id FROM tasks WHERE {_PLACE})", *place
            )
            for table in ("posts", "intents", "placeholders"):
                await con.execute(f"DELETE FROM {table} WHERE {_PLACE}", *place)
            n_tasks = _count(await con.execute(f"DELETE FROM tasks WHERE {_PLACE}", *place))
            await con.execute(f"DELETE FROM channels WHERE {_PLACE}", *place)
        return ForgetResult(threads=n_threads, turns=n_turns, tasks=n_tasks)
