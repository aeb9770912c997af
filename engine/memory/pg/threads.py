"""PostgreSQL: the part of the memory that `engine.memory.threads` is for SQLite (ThreadStore)."""

from __future__ import annotations

from engine.memory.pg.connection import PgConnection


class PgThreadStore(PgConnection):
    """To be written: the same methods, arguments, results and errors as the SQLite part."""
