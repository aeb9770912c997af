"""PostgreSQL: the part of the memory that `engine.memory.jobs` is for SQLite (JobRunStore)."""

from __future__ import annotations

from engine.memory.pg.connection import PgConnection


class PgJobRunStore(PgConnection):
    """To be written: the same methods, arguments, results and errors as the SQLite part."""
