"""PostgreSQL: the part of the memory that `engine.memory.investigation_queries` is for SQLite
(InvestigationQueries): investigations across channels, newest first, in keyset pages.

Thread ids compare byte by byte (`COLLATE "C"`), as SQLite compares them, whatever the
database's collation: a page's cursor then continues exactly where the SQLite one would.
"""

from __future__ import annotations

from datetime import datetime

from engine.memory.pg.connection import PgConnection
from engine.memory.records import ThreadRecord
from engine.memory.schema import _THREAD_COLS, _thread, _ts


class PgInvestigationQueries(PgConnection):
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
                params.append(value)
                where.append(f"{column} = ${len(params)}")
        if after is not None:
            params += [_ts(after[0]), after[1]]
            n = len(params)
            where.append(f'(created_at COLLATE "C", id COLLATE "C") < (${n - 1}, ${n})')
        params.append(limit)
        rows = await self._rows(
            f"SELECT {_THREAD_COLS} FROM threads WHERE {' AND '.join(where)} "
            f'ORDER BY created_at COLLATE "C" DESC, id COLLATE "C" DESC LIMIT ${len(params)}',
            *params,
        )
        return [_thread(r) for r in rows]


