"""Where work arrived lately on a platform: what a chat adapter reads again after a restart.

Discord does not send a new gateway session what was posted while the bot was down; the adapter
reads those places' history itself (adapters.discord.catch_up) and needs to know which places,
and from which message on. A place is a channel's top level (a message that opened its own
thread was posted there: a mention) or a thread (a reply, a DM, an investigation's thread).

Only the newest `SCANNED_TASKS` tasks are looked at (a range of the primary key, never a read
of the whole table): the most recently active places are among them, and a start-up after a
long outage asks about the last hour or so, not about history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.memory.connection import MemoryConnection
from engine.memory.records import RecentPlace
from engine.memory.schema import _dt, _ts

#: How many of the newest tasks (all platforms) are looked at.
SCANNED_TASKS = 20_000

#: Shared with the PostgreSQL version: `{thread}`, `{message_id}`, `{kind}` read the task's JSON,
#: `{platform}` is the column (SQLite: `+platform`, so that the planner walks the primary key's
#: range rather than every task of the platform in an index), `{p}`/`{since}`/`{scan}`/`{limit}`
#: are the parameters.
RECENT_PLACES_SQL = """
WITH recent AS (
    SELECT id, workspace, channel, {thread} AS thread, {message_id} AS message_id,
           CASE WHEN {kind} = 'message' THEN id END AS message_task, created_at
    FROM tasks
    WHERE id > (SELECT coalesce(max(id), 0) FROM tasks) - {scan}
      AND {platform} = {p} AND created_at >= {since}
),
places AS (
    -- where each message was posted: a message that opened its own thread, at the top level
    SELECT workspace, channel, CASE WHEN thread IS NULL OR thread = message_id THEN NULL ELSE thread END AS thread,
           message_task, created_at AS at
    FROM recent
    UNION ALL
    -- and the thread it opened (replies there came after it)
    SELECT workspace, channel, thread, message_task, created_at FROM recent WHERE thread = message_id
    UNION ALL
    -- threads whose work went on lately (an investigation started by a command)
    SELECT workspace, channel, thread, NULL, updated_at FROM threads
    WHERE platform = {p} AND updated_at >= {since} AND thread IS NOT NULL
),
grouped AS (
    SELECT workspace, channel, thread, max(at) AS last_active, max(message_task) AS last_task
    FROM places GROUP BY workspace, channel, thread
)
SELECT g.workspace, g.channel, g.thread, g.last_active, t.event_id
FROM grouped AS g LEFT JOIN tasks AS t ON t.id = g.last_task
ORDER BY g.last_active DESC, g.workspace, g.channel, coalesce(g.thread, '')
LIMIT {limit}
"""


_SQL = RECENT_PLACES_SQL.format(
    thread="json_extract(body, '$.thread')", message_id="json_extract(body, '$.message_id')",
    kind="json_extract(body, '$.kind')", platform="+platform", p=":p", since=":since", scan=":scan", limit=":limit",
)


def recent_place(row: Any) -> RecentPlace:
    workspace, channel, thread, last_active, event_id = row
    return RecentPlace(workspace=workspace, channel=channel, thread=thread, last_active=_dt(last_active),
                       last_message_event=event_id)


class RecentPlaces(MemoryConnection):
    async def recent_places(self, platform: str, since: datetime, *, limit: int = 1000) -> list[RecentPlace]:
        """The places of `platform` with a task (or a thread's work) since `since`, most
        recently active first, at most `limit`; each with the event id of the message task
        stored last there."""
        rows = await self._rows(_SQL, {"p": platform, "since": _ts(since), "scan": SCANNED_TASKS, "limit": limit})
        return [recent_place(r) for r in rows]
