"""PostgreSQL: the part of the memory that `engine.memory.maintenance` is for SQLite (Maintenance)."""

from __future__ import annotations

from engine.memory.pg.connection import PgConnection


class PgMaintenance(PgConnection):
    """To be written: the same methods, arguments, results and errors as the SQLite part."""
