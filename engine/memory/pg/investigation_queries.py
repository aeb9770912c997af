"""PostgreSQL: the part of the memory that `engine.memory.investigation_queries` is for SQLite (InvestigationQueries)."""

from __future__ import annotations

from engine.memory.pg.connection import PgConnection


class PgInvestigationQueries(PgConnection):
    """To be written: the same methods, arguments, results and errors as the SQLite part."""
