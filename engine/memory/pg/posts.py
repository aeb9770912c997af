"""PostgreSQL: posts, intents and placeholders, the rows that make posting exactly-once.

The twin of `engine.memory.posts.PostStore`. SQLite's `posts_settle` trigger is a data-modifying
CTE here: recording a post deletes its intent and the placeholder it replaced in the same
statement, so a crash can never leave a recorded post with its intent still open (which would
make a resumed task look for it again) or its placeholder still "thinking".
"""

from __future__ import annotations

from engine.memory.pg.connection import PgConnection
from engine.memory.posts import _PLACEHOLDER_COLS, _placeholder
from engine.memory.records import Placeholder
from engine.memory.schema import _ts
from engine.models import utcnow

_RECORD_POST = """
WITH post AS (
    INSERT INTO posts (key, task_id, platform, workspace, channel, thread, message_id, persona,
                       thread_id, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING
    RETURNING key, platform, workspace, channel, message_id
),
intent AS (DELETE FROM intents WHERE key IN (SELECT key FROM post)),
placeholder AS (
    DELETE FROM placeholders AS p USING post
    WHERE p.platform = post.platform AND p.workspace = post.workspace
      AND p.channel = post.channel AND p.message_id = post.message_id
)
SELECT count(*) FROM post
"""


class PgPostStore(PgConnection):
    """Posts, intents and placeholders."""

    # -- posts -----------------------------------------------------------------------------------

    async def record_post(
        self,
        key: str,
        *,
        task_id: int | None,
        platform: str,
        workspace: str,
        channel: str,
        thread: str | None,
        message_id: str,
        persona: str,
        thread_id: str | None,
    ) -> None:
        """Idempotent. A key posted twice keeps both message ids; `post_for_key` gives the first.
        A new post settles its intent and the placeholder it replaced (same statement)."""
        await self._write(
            _RECORD_POST,
            key, task_id, platform, workspace, channel, thread, message_id, persona, thread_id, _ts(utcnow()),
        )

    async def post_for_key(self, key: str) -> str | None:
        rows = await self._rows("SELECT message_id FROM posts WHERE key = $1 ORDER BY id LIMIT 1", key)
        return rows[0][0] if rows else None

    async def persona_for_message(self, platform: str, workspace: str, channel: str, message_id: str) -> str | None:
        rows = await self._rows(
            """
            SELECT persona FROM posts
            WHERE platform = $1 AND workspace = $2 AND channel = $3 AND message_id = $4
            ORDER BY id LIMIT 1
            """,
            platform, workspace, channel, message_id,
        )
        return rows[0][0] if rows else None

    async def record_intent(
        self, key: str, *, task_id: int | None, platform: str, workspace: str, channel: str, thread: str | None
    ) -> None:
        """Before a post goes out: a resumed task that finds an intent without a post looks for
        the message on the platform before posting again (the platform may have taken it)."""
        await self._write(
            """
            INSERT INTO intents (key, task_id, platform, workspace, channel, thread, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
            """,
            key, task_id, platform, workspace, channel, thread, _ts(utcnow()),
        )

    async def has_intent(self, key: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM intents WHERE key = $1", key))

    # -- placeholders ----------------------------------------------------------------------------

    async def placeholder_for(
        self, platform: str, workspace: str, channel: str, thread: str | None, persona: str
    ) -> Placeholder | None:
        """The placeholder showing (or about to show) for `persona` in this thread, if any."""
        rows = await self._rows(
            f"""
            SELECT {_PLACEHOLDER_COLS} FROM placeholders
            WHERE platform = $1 AND workspace = $2 AND channel = $3 AND thread = $4 AND persona = $5
            """,
            platform, workspace, channel, thread or "", persona,
        )
        return _placeholder(rows[0]) if rows else None

    async def placeholders(self, task_id: int | None = None) -> list[Placeholder]:
        """Every placeholder (of one task when given), oldest first."""
        rows = await self._rows(
            f"""
            SELECT {_PLACEHOLDER_COLS} FROM placeholders
            WHERE $1::bigint IS NULL OR task_id = $1 ORDER BY created_at, key
            """,
            task_id,
        )
        return [_placeholder(r) for r in rows]

    async def record_placeholder(self, p: Placeholder) -> None:
        """Write the row before the placeholder is posted (message_id None), then again with
        its id once posted. One placeholder per persona and thread: the newest row wins."""
        await self._write(
            """
            INSERT INTO placeholders (key, task_id, platform, workspace, channel, thread, persona,
                                      message_id, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (platform, workspace, channel, thread, persona) DO UPDATE SET
                key = excluded.key, task_id = excluded.task_id, message_id = excluded.message_id
            """,
            p.key, p.task_id, p.platform, p.workspace, p.channel, p.thread or "", p.persona,
            p.message_id, _ts(utcnow()),
        )

    async def drop_placeholder(self, key: str) -> None:
        """The placeholder was replaced (or never shown): forget it."""
        await self._write("DELETE FROM placeholders WHERE key = $1", key)
