"""PostgreSQL: threads, their readable ids, and the turns in them.

The twin of `engine.memory.threads.ThreadStore`. What SQLite's triggers do is done in the
statements here (data-modifying CTEs), each one statement and so atomic on its own:

- A readable id (`payments-3`): one statement advances the stem's counter (an upsert, which
  holds the counter's row until it commits, so two replicas never get the same number) and
  notes the task's id. A number whose id some other thread already has is skipped (burnt, and
  the next one tried), so counters never go back and an id is never given twice; a task that has
  its id already gets it again and advances nothing.
- A turn: one statement bumps its channel's `docs`/`tokens` (the row lock orders the turns of a
  channel, so each gets its own `doc`) and stores the turn with the next seq of its thread. Two
  turns of one thread stored at the very same moment may compute the same seq (a statement's
  snapshot is taken when it starts): the loser's statement is undone whole and run again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from engine.memory.pg.connection import PgConnection
from engine.memory.records import ThreadRecord, ThreadStatus, ThreadSummary, TurnRecord
from engine.memory.schema import (
    _THREAD_COLS,
    _TURN_COLS,
    _dt,
    _thread,
    _ts,
    _turn,
    turn_params,
)
from engine.models import utcnow

#: $1 task, $2 stem. The task's id if it has one; else the next number of the stem, noted for
#: the task unless a thread has that id already (then nothing comes back: try again).
ALLOCATE_THREAD_ID = """
WITH old AS (SELECT thread_id FROM thread_ids WHERE task_id = $1),
bump AS (
    INSERT INTO id_counters AS c (stem, last)
    SELECT $2::text, 1 WHERE NOT EXISTS (SELECT 1 FROM old)
    ON CONFLICT (stem) DO UPDATE SET last = c.last + 1
    RETURNING last
),
new AS (
    INSERT INTO thread_ids (task_id, thread_id, stem, n)
    SELECT $1, $2::text || last, $2::text, last FROM bump
    WHERE NOT EXISTS (SELECT 1 FROM threads WHERE id = $2::text || last)
    ON CONFLICT DO NOTHING
    RETURNING thread_id
)
SELECT thread_id FROM old UNION ALL SELECT thread_id FROM new
"""

#: Numbers tried before giving up (each a taken id skipped: only ever a handful).
_MAX_ALLOCATION_TRIES = 1000

_CREATE_THREAD = f"""
WITH ch AS (
    INSERT INTO channels AS c (platform, workspace, channel) VALUES ($3, $4, $5)
    ON CONFLICT (platform, workspace, channel) DO UPDATE SET docs = c.docs
    RETURNING id
)
INSERT INTO threads (chan, {_THREAD_COLS})
SELECT ch.id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 FROM ch
"""

#: Parameters: `engine.memory.schema.turn_params` (ntok first, thread id last).
INSERT_TURN = """
WITH th AS (SELECT id, chan FROM threads WHERE id = $16),
c AS (
    UPDATE channels SET docs = docs + 1, tokens = tokens + $1
    WHERE id = (SELECT chan FROM th)
    RETURNING id, docs
)
INSERT INTO turns (thread_id, seq, doc, ntok, task_id, step, role, author, mode, text, findings,
                   structured, confidence, route, input_tokens, output_tokens, model, created_at)
SELECT th.id,
       coalesce((SELECT max(seq) FROM turns WHERE thread_id = th.id), 0) + 1,
       (c.id << 32) + 4294967295 - c.docs,
       $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
FROM th JOIN c ON c.id = th.chan
RETURNING id, seq
"""

_MAX_TURN_TRIES = 100


def storable(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """The values with NUL characters replaced (U+FFFD): PostgreSQL's text cannot hold NUL,
    and a person's words that carry one are still kept rather than refused. (JSON columns
    escape it already.)"""
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) and "\x00" in v else v for v in values)


class PgThreadStore(PgConnection):
    """Threads and their turns."""

    # -- threads ---------------------------------------------------------------------------------

    async def thread_id_for_task(self, task_id: int, stem: str) -> str:
        """The id of the thread that task `task_id` opens: `{stem}{n}`, the next n for the stem.

        Given once per task and the same on every later call. Numbers are never handed out
        twice, even after the channel is forgotten, nor across replicas; one already taken by
        some other thread is skipped.
        """
        for _ in range(_MAX_ALLOCATION_TRIES):
            rows = await self._write(ALLOCATE_THREAD_ID, task_id, stem)
            if rows:
                return rows[0]["thread_id"]
        raise RuntimeError(f"no free thread id for stem {stem!r} after {_MAX_ALLOCATION_TRIES} tries")

    async def create_thread(self, rec: ThreadRecord) -> ThreadRecord:
        """Raises asyncpg.UniqueViolationError if the id exists (sqlite3.IntegrityError on SQLite)."""
        await self._write(_CREATE_THREAD, *storable(self._thread_values(rec)))
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

        Raises KeyError for an unknown thread, ValueError if the record names another channel.
        """
        now = utcnow()
        done = await self._write(
            """
            UPDATE threads SET kind = $1, thread = $2, title = $3, inv_type = $4, phase = $5,
                status = $6, lead = $7, turn_count = $8, updated_at = $9
            WHERE id = $10 AND platform = $11 AND workspace = $12 AND channel = $13
            RETURNING id
            """,
            *storable((
                rec.kind.value, rec.thread, rec.title, rec.inv_type, rec.phase.value,
                rec.status.value, rec.lead, rec.turn_count, _ts(now),
                rec.id, rec.platform, rec.workspace, rec.channel,
            )),
        )
        if not done:
            if await self.get_thread(rec.id) is None:
                raise KeyError(f"unknown thread {rec.id}")
            raise ValueError(f"thread {rec.id} cannot move to another channel")
        return rec.model_copy(update={"updated_at": now})

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        rows = await self._rows(f"SELECT {_THREAD_COLS} FROM threads WHERE id = $1", thread_id)
        return _thread(rows[0]) if rows else None

    async def find_thread(self, platform: str, workspace: str, channel: str, thread: str) -> ThreadRecord | None:
        """The record of a platform thread (the newest, should there be several); crews last."""
        rows = await self._rows(
            f"""
            SELECT {_THREAD_COLS} FROM threads
            WHERE platform = $1 AND workspace = $2 AND channel = $3 AND thread = $4
            ORDER BY kind = 'crew', created_at DESC LIMIT 1
            """,
            platform, workspace, channel, thread,
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
        if statuses is not None and not statuses:
            return []
        values = None if statuses is None else sorted(ThreadStatus(s).value for s in statuses)
        rows = await self._rows(
            """
            SELECT id, kind, title, phase, status, lead, turn_count, updated_at FROM threads
            WHERE platform = $1 AND workspace = $2 AND channel = $3
              AND ($4::text[] IS NULL OR status = ANY($4::text[]))
            ORDER BY updated_at DESC, id
            """,
            platform, workspace, channel, values,
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
            WHERE kind = 'investigation' AND status IN ('active', 'paused') AND updated_at < $1
            ORDER BY updated_at
            """,
            _ts(older_than),
        )
        return [_thread(r) for r in rows]

    # -- turns -----------------------------------------------------------------------------------

    async def add_turn(self, turn: TurnRecord) -> TurnRecord:
        """Store a turn (next seq in its thread) and index its text. KeyError: unknown thread."""
        params = storable(turn_params(turn))
        for attempt in range(_MAX_TURN_TRIES):
            try:
                rows = await self._write(INSERT_TURN, *params)
                break
            except asyncpg.UniqueViolationError as exc:  # same seq as a concurrent turn: again
                if exc.constraint_name != "turns_thread_id_seq_key" or attempt == _MAX_TURN_TRIES - 1:
                    raise
        if not rows:
            raise KeyError(f"unknown thread {turn.thread_id}")
        return turn.model_copy(update={"id": rows[0]["id"], "seq": rows[0]["seq"]})

    async def turns(self, thread_id: str) -> list[TurnRecord]:
        rows = await self._rows(f"SELECT {_TURN_COLS} FROM turns WHERE thread_id = $1 ORDER BY seq", thread_id)
        return [_turn(r) for r in rows]

    async def turn_for_task(self, task_id: int, step: int, role: str = "persona") -> TurnRecord | None:
        """The turn (a persona's by default) already stored for this task and step, if any."""
        rows = await self._rows(
            f"""
            SELECT {_TURN_COLS} FROM turns
            WHERE task_id = $1 AND step = $2 AND role = $3 ORDER BY id DESC LIMIT 1
            """,
            task_id, step, str(role),
        )
        return _turn(rows[0]) if rows else None

    async def count_turns(self, platform: str, workspace: str, channel: str) -> int:
        rows = await self._rows(
            """
            SELECT count(*) FROM turns JOIN threads ON threads.id = turns.thread_id
            WHERE threads.platform = $1 AND threads.workspace = $2 AND threads.channel = $3
            """,
            platform, workspace, channel,
        )
        return rows[0][0]
