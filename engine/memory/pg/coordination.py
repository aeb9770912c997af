"""PostgreSQL: the part of the memory that lets several replicas share one database: who is alive, who owns which task, who holds which lane."""

from __future__ import annotations

from engine.memory.pg.connection import PgConnection


class PgCoordination(PgConnection):
    """To be written (replica coordination: see engine/replicas.py)."""
