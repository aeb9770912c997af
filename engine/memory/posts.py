"""Posting records: posts, intents and placeholders, the rows that make posting exactly-once.

Why each is written when it is, and how a resumed task uses them: `engine.posting`. This module
only stores them and reads them back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.memory.connection import MemoryConnection
from engine.memory.records import Placeholder
from engine.memory.schema import _ts
from engine.models import utcnow

_PLACEHOLDER_COLS = "key, task_id, platform, workspace, channel, thread, persona, message_id"


def _placeholder(row: Iterable[Any]) -> Placeholder:
    key, task_id, platform, workspace, channel, thread, persona, message_id = row
    return Placeholder(
        key=key, task_id=task_id, platform=platform, workspace=workspace, channel=channel,
        thread=thread or None, persona=persona, message_id=message_id,
    )


class PostStore(MemoryConnection):
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
        """Idempotent. A key posted twice keeps both message ids; `post_for_key` gives the first."""
        await self._write(
            """
            INSERT INTO posts (key, task_id, platform, workspace, channel, thread, message_id,
                               persona, thread_id, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
            """,
            (key, task_id, platform, workspace, channel, thread, message_id, persona, thread_id,
             _ts(utcnow())),
        )

    async def post_for_key(self, key: str) -> str | None:
        rows = await self._rows(
            "SELECT message_id FROM posts WHERE key = ? ORDER BY id LIMIT 1", (key,)
        )
        return rows[0][0] if rows else None

    async def persona_for_message(
        self, platform: str, workspace: str, channel: str, message_id: str
    ) -> str | None:
        rows = await self._rows(
            """
            SELECT persona FROM posts
            WHERE platform = ? AND workspace = ? AND channel = ? AND message_id = ?
            ORDER BY id LIMIT 1
            """,
            (platform, workspace, channel, message_id),
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
            VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
            """,
            (key, task_id, platform, workspace, channel, thread, _ts(utcnow())),
        )

    async def has_intent(self, key: str) -> bool:
        return bool(await self._rows("SELECT 1 FROM intents WHERE key = ?", (key,)))

    # -- placeholders ----------------------------------------------------------------------------

    async def placeholder_for(
        self, platform: str, workspace: str, channel: str, thread: str | None, persona: str
    ) -> Placeholder | None:
        """The placeholder showing (or about to show) for `persona` in this thread, if any."""
        rows = await self._rows(
            f"""
            SELECT {_PLACEHOLDER_COLS} FROM placeholders
            WHERE platform = ? AND workspace = ? AND channel = ? AND thread = ? AND persona = ?
            """,
            (platform, workspace, channel, thread or "", persona),
        )
        return _placeholder(rows[0]) if rows else None

    async def placeholders(self, task_id: int | None = None) -> list[Placeholder]:
        """Every placeholder (of one task when given), oldest first."""
        where, params = ("WHERE task_id = ?", (task_id,)) if task_id is not None else ("", ())
        rows = await self._rows(
            f"SELECT {_PLACEHOLDER_COLS} FROM placeholders {where} ORDER BY created_at, key", params
        )
        return [_placeholder(r) for r in rows]

    async def record_placeholder(self, p: Placeholder) -> None:
        """Write the row before the placeholder is posted (message_id None), then again with
        its id once posted. One placeholder per persona and thread: the newest row wins."""
        await self._write(
            """
            INSERT INTO placeholders (key, task_id, platform, workspace, channel, thread, persona,
                                      message_id, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (platform, workspace, channel, thread, persona) DO UPDATE SET
                key = excluded.key, task_id = excluded.task_id, message_id = excluded.message_id
            """,
            (p.key, p.task_id, p.platform, p.workspace, p.channel, p.thread or "", p.persona,
             p.message_id, _ts(utcnow())),
        )

    async def drop_placeholder(self, key: str) -> None:
        """The placeholder was replaced (or never shown): forget it."""
        await self._write("DELETE FROM placeholders WHERE key = ?", (key,))
