"""PostgreSQL: the part of the memory that `engine.memory.channels` is for SQLite (ChannelMemory)."""

from __future__ import annotations

from engine.memory.pg.connection import PgConnection


class PgChannelMemory(PgConnection):
    """To be written: the same methods, arguments, results and errors as the SQLite part."""
