"""What only the operator API asks about investigations: a filtered list across channels, newest
first, in pages (a keyset cursor: stable while new investigations arrive). Kept apart from the
hot-path stores."""

from __future__ import annotations

from datetime import datetime

from engine.memory.connection import MemoryConnection
from engine.memory.records import ThreadRecord
from engine.memory.schema import _THREAD_COLS, _thread, _ts


class InvestigationQueries(MemoryConnection):
    async def investigations_page(
        self,
        *,
        platform: str | None = None,
        channel: str | None = None,
        status: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 50,
    ) -> list[ThreadRecord]:
        """Investigations matching the filters, newest first (created_at, then id), starting
        after the `(created_at, id)` key of the previous page's last one; at most `limit`."""
        where, params = ["kind = 'investigation'"], []
        for column, value in (("platform", platform), ("channel", channel), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if after is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [_ts(after[0]), _ts(after[0]), after[1]]
        rows = await self._rows(
            f"SELECT {_THREAD_COLS} FROM threads WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            [*params, limit],
        )
        return [_thread(r) for r in rows]
