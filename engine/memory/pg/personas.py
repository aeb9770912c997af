"""PostgreSQL: the part of the memory that `engine.memory.personas` is for SQLite (PersonaMemory)."""

from __future__ import annotations

from engine.memory.pg.connection import PgConnection


class PgPersonaMemory(PgConnection):
    """To be written: the same methods, arguments, results and errors as the SQLite part."""
