"""PostgreSQL: the part of the memory that `engine.memory.tasks` is for SQLite (TaskStore)."""

from __future__ import annotations

from engine.memory.pg.connection import PgConnection


class PgTaskStore(PgConnection):
    """To be written: the same methods, arguments, results and errors as the SQLite part."""
