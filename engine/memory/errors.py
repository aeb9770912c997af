"""Which failures of the memory are worth asking again: the platform should re-deliver the event.

A locked SQLite file, a slow disk, a PostgreSQL server that is restarting or out of connections,
a serialization conflict between replicas: asking again can work, so the adapters answer "try
again" (Slack retries, Discord's person is told) instead of "received". Checked by the memory's
own exception classes, without importing asyncpg where it is not in use.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys


def is_transient(error: BaseException) -> bool:
    """True when storing failed for a reason that may pass: the event should be offered again."""
    if isinstance(error, (sqlite3.Error, OSError, asyncio.TimeoutError)):
        return True
    asyncpg = sys.modules.get("asyncpg")  # imported only when the memory is on PostgreSQL
    return asyncpg is not None and isinstance(error, (asyncpg.PostgresError, asyncpg.InterfaceError))
