"""PostgreSQL: the part of the memory that `engine.memory.maintenance` is for SQLite (Maintenance):
which investigations wait on people, what a channel has open, and retention.

The same rules as SQLite's (see that module's doc); only the SQL differs: a task's JSON body is
read with `body::jsonb ->> 'thread'`, and a turn's recall entry (a generated tsvector column of
`turns`) goes with its row, so retention has no index to keep in step.
"""

from __future__ import annotations

from datetime import datetime

from engine.memory.maintenance import OPEN_STATUSES, PruneResult
from engine.memory.pg.connection import PgConnection
from engine.memory.records import ThreadRecord
from engine.memory.schema import _THREAD_COLS, _thread, _ts

_TH_COLS = ", ".join(f"th.{c.strip()}" for c in _THREAD_COLS.split(","))

#: A task's platform thread, from its JSON body (NULL for a top-level message).
_TASK_THREAD = "(k.body::jsonb ->> 'thread')"

#: No person's word in the thread since its record's latest update (see the SQLite twin's
#: `_ANSWERED_SINCE`). Written as two NOT EXISTS joined by AND, not NOT (EXISTS OR EXISTS): so
#: PostgreSQL plans each as one hash anti-join over the threads, instead of scanning the
#: channel's tasks once per thread (measured: 30 s for 2,000 waiting threads over 20,000 tasks).
_UNANSWERED = f"""(
    NOT EXISTS (SELECT 1 FROM turns AS t
                WHERE t.thread_id = th.id AND t.role = 'human' AND t.created_at > th.updated_at)
    AND NOT EXISTS (SELECT 1 FROM tasks AS k
                    WHERE k.platform = th.platform AND k.workspace = th.workspace AND k.channel = th.channel
                      AND {_TASK_THREAD} = th.thread
                      AND (k.created_at > th.updated_at OR k.status IN ('accepted', 'running'))))"""

#: When the thread last saw activity: its record's update or its newest turn.
_LAST_ACTIVITY = "greatest(th.updated_at, coalesce((SELECT max(created_at) FROM turns WHERE thread_id = th.id), ''))"


def _count(status: str) -> int:
    """The row count of a command's status ("DELETE 3" → 3)."""
    return int(status.rsplit(" ", 1)[-1])


class PgMaintenance(PgConnection):
    """Queries and deletes for the scheduled jobs."""

    async def waiting_investigations(self, idle_since: datetime) -> list[ThreadRecord]:
        """Investigations waiting on people (WAITING or PAUSED) with no change since `idle_since`
        and no person's word since they stopped, oldest first. Closed ones never wait."""
        rows = await self._rows(
            f"""
            SELECT {_TH_COLS} FROM threads AS th
            WHERE th.kind = 'investigation' AND th.status IN ('waiting', 'paused')
              AND th.thread IS NOT NULL AND th.updated_at < $1 AND {_UNANSWERED}
            ORDER BY th.updated_at, th.id COLLATE "C"
            """,
            _ts(idle_since),
        )
        return [_thread(r) for r in rows]

    async def answered_since_wait(self, thread_id: str) -> bool:
        """Whether a person wrote in the thread after its latest change (the wait began)."""
        rows = await self._rows(f"SELECT NOT {_UNANSWERED} FROM threads AS th WHERE th.id = $1", thread_id)
        return bool(rows and rows[0][0])

    async def open_investigations(self, platform: str, workspace: str | None, channel: str) -> list[ThreadRecord]:
        """The channel's active, waiting and paused investigations, oldest first. Never another
        channel's; `workspace` None: the channel id in whichever workspace holds it."""
        rows = await self._rows(
            f"""
            SELECT {_TH_COLS} FROM threads AS th
            WHERE th.platform = $1 AND th.channel = $2 AND ($3::text IS NULL OR th.workspace = $3)
              AND th.kind = 'investigation' AND th.status = ANY($4::text[])
            ORDER BY th.created_at, th.id COLLATE "C"
            """,
            platform, channel, workspace, list(OPEN_STATUSES),
        )
        return [_thread(r) for r in rows]

    async def latest_post_key(self, thread_id: str) -> str | None:
        """The key of the newest post recorded for the thread (why it paused: `paused:`, `error`)."""
        rows = await self._rows("SELECT key FROM posts WHERE thread_id = $1 ORDER BY id DESC LIMIT 1", thread_id)
        return rows[0][0] if rows else None

    async def prune(self, before: datetime) -> PruneResult:
        """Delete finished work whose last activity is older than `before` (see the SQLite twin).

        One transaction: a search during or after it sees all of a thread or none of it. Where
        SQLite says `x NOT IN (SELECT ...)`, this says NOT EXISTS (the same rows, as the ids are
        never NULL): PostgreSQL plans it as an anti-join, where NOT IN over a table too big to
        hash in memory would rescan it for every row.
        """
        cutoff = _ts(before)
        async with self._transaction() as db:
            await db.execute(
                f"""
                CREATE TEMP TABLE pruned ON COMMIT DROP AS
                SELECT th.id AS id FROM threads AS th
                WHERE (th.kind = 'conversation' OR th.status <> ALL($1::text[]))
                  AND {_LAST_ACTIVITY} < $2
                  AND NOT EXISTS (SELECT 1 FROM tasks AS k  -- a reply just came in: not now
                                  WHERE k.status IN ('accepted', 'running') AND k.platform = th.platform
                                    AND k.workspace = th.workspace AND k.channel = th.channel
                                    AND {_TASK_THREAD} = th.thread)
                """,
                list(OPEN_STATUSES), cutoff,
            )
            turns = _count(await db.execute("DELETE FROM turns WHERE thread_id IN (SELECT id FROM pruned)"))
            threads = _count(await db.execute("DELETE FROM threads WHERE id IN (SELECT id FROM pruned)"))
            posts = _count(await db.execute(
                """
                DELETE FROM posts WHERE thread_id IN (SELECT id FROM pruned)
                   OR (created_at < $1
                       AND NOT EXISTS (SELECT 1 FROM threads AS th WHERE th.id = posts.thread_id)
                       AND NOT EXISTS (SELECT 1 FROM threads AS th WHERE th.platform = posts.platform
                                       AND th.workspace = posts.workspace AND th.channel = posts.channel
                                       AND th.thread = posts.thread))
                """,
                cutoff,
            ))
            # Tasks done with, that worked on no thread that stays. The newest task is kept, as
            # on SQLite (there, it keeps ids from being given again; here the identity never
            # goes back anyway, and the same rule keeps both memories' answers the same).
            tasks = _count(await db.execute(
                """
                DELETE FROM tasks AS k
                WHERE k.status IN ('done', 'failed') AND k.updated_at < $1
                  AND k.id < (SELECT max(id) FROM tasks)
                  AND NOT EXISTS (SELECT 1 FROM turns WHERE turns.task_id = k.id)
                  AND NOT EXISTS (SELECT 1 FROM thread_ids AS ti JOIN threads AS th ON th.id = ti.thread_id
                                  WHERE ti.task_id = k.id)
                  AND NOT EXISTS (SELECT 1 FROM threads AS th WHERE th.platform = k.platform
                                  AND th.workspace = k.workspace AND th.channel = k.channel
                                  AND th.thread = (k.body::jsonb ->> 'thread'))
                """,
                cutoff,
            ))
            await db.execute(
                "DELETE FROM thread_ids AS ti WHERE NOT EXISTS (SELECT 1 FROM tasks AS k WHERE k.id = ti.task_id) "
                "AND NOT EXISTS (SELECT 1 FROM threads AS th WHERE th.id = ti.thread_id)"
            )
            pending = 0
            for table in ("intents", "placeholders"):  # left by a crash; their task will not resume
                pending += _count(await db.execute(
                    f"""
                    DELETE FROM {table} AS p WHERE created_at < $1 AND NOT EXISTS
                        (SELECT 1 FROM tasks AS k WHERE k.id = p.task_id AND k.status IN ('accepted', 'running'))
                    """,
                    cutoff,
                ))
        return PruneResult(threads=threads, turns=turns, tasks=tasks, posts=posts, pending=pending)
