"""PostgreSQL: the part of the memory that `engine.memory.recent_places` is for SQLite: where
work arrived lately on a platform (the same statement, reading the task's JSON as jsonb)."""

from __future__ import annotations

from datetime import datetime

from engine.memory.pg.connection import PgConnection
from engine.memory.recent_places import RECENT_PLACES_SQL, SCANNED_TASKS, recent_place
from engine.memory.records import RecentPlace
from engine.memory.schema import _ts

_SQL = RECENT_PLACES_SQL.format(
    thread="(body::jsonb ->> 'thread')", message_id="(body::jsonb ->> 'message_id')",
    kind="(body::jsonb ->> 'kind')", platform="platform", p="$1", since="$2", scan="$3", limit="$4",
)


class PgRecentPlaces(PgConnection):
    async def recent_places(self, platform: str, since: datetime, *, limit: int = 1000) -> list[RecentPlace]:
        """The places of `platform` with a task (or a thread's work) since `since`, most
        recently active first, at most `limit`; each with the event id of the message task
        stored last there."""
        rows = await self._rows(_SQL, platform, _ts(since), SCANNED_TASKS, limit)
        return [recent_place(r) for r in rows]
