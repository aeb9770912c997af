"""What the operator API asks the memory: a liveness query, tasks by filter with a keyset cursor,
and a task's turns. Kept apart from the hot-path stores: only the API calls these."""

from __future__ import annotations

from datetime import datetime

from engine.memory.connection import MemoryConnection
from engine.memory.records import StoredTask, TurnRecord
from engine.memory.schema import _ts
from engine.memory.tasks import TASK_COLS, stored_task


class ApiQueries(MemoryConnection):
    async def ping(self) -> None:
        """Raises when the database does not answer."""
        await self._rows("SELECT 1")
