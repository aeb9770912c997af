"""PostgreSQL: the part of the memory that `engine.memory.api_queries` is for SQLite (ApiQueries)."""

from __future__ import annotations

from engine.memory.pg.connection import PgConnection


class PgApiQueries(PgConnection):
    """To be written: the same methods, arguments, results and errors as the SQLite part."""
