"""The memory's side of the scheduled jobs (`engine.jobs`): which investigations wait on people,
what a channel has open, and retention (pruning finished work older than a limit).

No table of its own: "this nudge or digest was posted" is the poster's record (its keys in
`posts`), so a restart never posts one twice.

Retention works thread by thread, so what stays is always whole: a thread goes (with its turns,
their recall index entries, its posts and the tasks that worked on it) when it is finished (an
investigation closed or complete, any conversation) and nothing happened in it since the limit.
Open investigations (active, waiting, paused) are never touched, however old. The channels'
recall statistics (`channels.docs`, `tokens`) are left as they are: `docs` numbers the FTS rowids
and must never go back, and the average turn length they give stays a fair estimate.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from engine.memory.connection import MemoryConnection
from engine.memory.records import ThreadRecord
from engine.memory.schema import _THREAD_COLS, _thread, _ts

#: Investigations a person still has to move on (a digest lists them; retention keeps them).
OPEN_STATUSES = ("active", "waiting", "paused")

_TH_COLS = ", ".join(f"th.{c.strip()}" for c in _THREAD_COLS.split(","))

#: When the thread last saw activity: its record's update or its newest turn.
_LAST_ACTIVITY = "max(th.updated_at, coalesce((SELECT max(created_at) FROM turns WHERE thread_id = th.id), ''))"

#: (`+th.thread`: without its TEXT affinity the comparison can use the index `tasks_thread`, on
#: the task's thread in its JSON body; with it SQLite read every task of the channel per thread:
#: 2,000 waiting threads over 20,000 tasks took 30 s, now 20 ms.)
#: A person's word in the thread since its record's latest update (when the wait began): a stored
#: message, or a task (a reply, a button) accepted in that platform thread since, or still to be
#: worked on (queued before the wait began, or resuming after a restart).
_ANSWERED_SINCE = """(
    EXISTS (SELECT 1 FROM turns AS t WHERE t.thread_id = th.id AND t.role = 'human' AND t.created_at > th.updated_at)
    OR EXISTS (SELECT 1 FROM tasks AS k
               WHERE k.platform = th.platform AND k.workspace = th.workspace AND k.channel = th.channel
                 AND json_extract(k.body, '$.thread') = +th.thread
                 AND (k.created_at > th.updated_at OR k.status IN ('accepted', 'running'))))"""


class PruneResult(BaseModel):
    """What retention removed, by kind of record."""

    model_config = ConfigDict(frozen=True)

    threads: int = 0
    turns: int = 0
    tasks: int = 0
    posts: int = 0
    pending: int = 0  # intents and placeholders left behind by work long finished

    @property
    def total(self) -> int:
        return self.threads + self.turns + self.tasks + self.posts + self.pending


class Maintenance(MemoryConnection):
    """Queries and deletes for the scheduled jobs."""

    async def waiting_investigations(self, idle_since: datetime) -> list[ThreadRecord]:
        """Investigations waiting on people (WAITING or PAUSED) with no change since `idle_since`
        and no person's word since they stopped, oldest first. Closed ones never wait."""
        rows = await self._rows(
            f"""
            SELECT {_TH_COLS} FROM threads AS th
            WHERE th.kind = 'investigation' AND th.status IN ('waiting', 'paused')
              AND th.thread IS NOT NULL AND th.updated_at < ? AND NOT {_ANSWERED_SINCE}
            ORDER BY th.updated_at, th.id
            """,
            (_ts(idle_since),),
        )
        return [_thread(r) for r in rows]

    async def answered_since_wait(self, thread_id: str) -> bool:
        """Whether a person wrote in the thread after its latest change (the wait began)."""
        rows = await self._rows(f"SELECT {_ANSWERED_SINCE} FROM threads AS th WHERE th.id = ?", (thread_id,))
        return bool(rows and rows[0][0])

    async def open_investigations(self, platform: str, workspace: str | None, channel: str) -> list[ThreadRecord]:
        """The channel's active, waiting and paused investigations, oldest first. Never another
        channel's; `workspace` None: the channel id in whichever workspace holds it."""
        where, params = "th.platform = ? AND th.channel = ?", [platform, channel]
        if workspace is not None:
            where += " AND th.workspace = ?"
            params.append(workspace)
        rows = await self._rows(
            f"""
            SELECT {_TH_COLS} FROM threads AS th
            WHERE {where} AND th.kind = 'investigation'
              AND th.status IN ({", ".join("?" * len(OPEN_STATUSES))})
            ORDER BY th.created_at, th.id
            """,
            [*params, *OPEN_STATUSES],
        )
        return [_thread(r) for r in rows]

    async def latest_post_key(self, thread_id: str) -> str | None:
        """The key of the newest post recorded for the thread (why it paused: `paused:`, `error`)."""
        rows = await self._rows("SELECT key FROM posts WHERE thread_id = ? ORDER BY id DESC LIMIT 1", (thread_id,))
        return rows[0][0] if rows else None

    async def prune(self, before: datetime) -> PruneResult:
        """Delete finished work whose last activity is older than `before` (see the module doc).

        One transaction: a search during or after it sees all of a thread or none of it, and the
        recall index loses exactly the turns deleted (the schema's delete trigger).
        """
        cutoff = _ts(before)
        async with self._transaction() as db:
            await db.execute("DROP TABLE IF EXISTS temp.pruned")
            await db.execute(
                f"""
                CREATE TEMP TABLE pruned AS
                SELECT th.id AS id FROM threads AS th
                WHERE (th.kind = 'conversation' OR th.status NOT IN ({", ".join("?" * len(OPEN_STATUSES))}))
                  AND {_LAST_ACTIVITY} < ?
                  AND NOT EXISTS (SELECT 1 FROM tasks AS k  -- a reply just came in: not now
                                  WHERE k.status IN ('accepted', 'running') AND k.platform = th.platform
                                    AND k.workspace = th.workspace AND k.channel = th.channel
                                    AND json_extract(k.body, '$.thread') = +th.thread)
                """,
                (*OPEN_STATUSES, cutoff),
            )
            turns = (await db.execute("DELETE FROM turns WHERE thread_id IN (SELECT id FROM temp.pruned)")).rowcount
            threads = (await db.execute("DELETE FROM threads WHERE id IN (SELECT id FROM temp.pruned)")).rowcount
            posts = (await db.execute(
                """
                DELETE FROM posts WHERE thread_id IN (SELECT id FROM temp.pruned)
                   OR (created_at < ? AND (thread_id IS NULL OR thread_id NOT IN (SELECT id FROM threads))
                       AND NOT EXISTS (SELECT 1 FROM threads AS th WHERE th.platform = posts.platform
                                       AND th.workspace = posts.workspace AND th.channel = posts.channel
                                       AND th.thread = posts.thread))
                """,
                (cutoff,),
            )).rowcount
            # Tasks that are done with, and worked on no thread that stays. The newest task is
            # always kept: SQLite gives a new row the highest id + 1, so no id is ever given
            # again to new work (a reused id would find this one's turns and thread id).
            tasks = (await db.execute(
                """
                DELETE FROM tasks
                WHERE status IN ('done', 'failed') AND updated_at < ?
                  AND id < (SELECT max(id) FROM tasks)
                  AND NOT EXISTS (SELECT 1 FROM turns WHERE turns.task_id = tasks.id)
                  AND NOT EXISTS (SELECT 1 FROM thread_ids AS ti JOIN threads AS th ON th.id = ti.thread_id
                                  WHERE ti.task_id = tasks.id)
                  AND NOT EXISTS (SELECT 1 FROM threads AS th WHERE th.platform = tasks.platform
                                  AND th.workspace = tasks.workspace AND th.channel = tasks.channel
                                  AND th.thread = json_extract(tasks.body, '$.thread'))
                """,
                (cutoff,),
            )).rowcount
            await db.execute(
                "DELETE FROM thread_ids WHERE task_id NOT IN (SELECT id FROM tasks) "
                "AND thread_id NOT IN (SELECT id FROM threads)"
            )
            pending = 0
            for table in ("intents", "placeholders"):  # left by a crash; their task will not resume
                pending += (await db.execute(
                    f"""
                    DELETE FROM {table} WHERE created_at < ? AND (task_id IS NULL OR task_id NOT IN
                        (SELECT id FROM tasks WHERE status IN ('accepted', 'running')))
                    """,
                    (cutoff,),
                )).rowcount
            await db.execute("DROP TABLE temp.pruned")
        return PruneResult(threads=threads, turns=turns, tasks=tasks, posts=posts, pending=pending)
