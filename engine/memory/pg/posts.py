"""PostgreSQL: the part of the memory that `engine.memory.posts` is for SQLite (PostStore)."""

from __future__ import annotations

from engine.memory.pg.connection import PgConnection


class PgPostStore(PgConnection):
    """To be written: the same methods, arguments, results and errors as the SQLite part."""
