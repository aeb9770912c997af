"""`PostgresMemory`: the engine's memory on PostgreSQL, one part per idea (as `SQLiteMemory`)."""

from __future__ import annotations

from engine.memory.pg.api_queries import PgApiQueries
from engine.memory.pg.channels import PgChannelMemory
from engine.memory.pg.coordination import PgCoordination
from engine.memory.pg.investigation_queries import PgInvestigationQueries
from engine.memory.pg.jobs import PgJobRunStore
from engine.memory.pg.maintenance import PgMaintenance
from engine.memory.pg.personas import PgPersonaMemory
from engine.memory.pg.posts import PgPostStore
from engine.memory.pg.recent_places import PgRecentPlaces
from engine.memory.pg.tasks import PgTaskStore
from engine.memory.pg.threads import PgThreadStore

__all__ = ["PostgresMemory"]


class PostgresMemory(
    PgTaskStore, PgThreadStore, PgPostStore, PgChannelMemory, PgPersonaMemory, PgMaintenance, PgJobRunStore,
    PgApiQueries, PgInvestigationQueries, PgRecentPlaces, PgCoordination,
):
    """The engine's memory on PostgreSQL. Open with `await PostgresMemory.open(url)`; `close()` when done."""
