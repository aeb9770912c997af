"""The PostgreSQL memory's schema, version by version.

`MIGRATIONS[n]` brings a database from version n-1 to n; a new database runs them all, in order,
in one transaction, so both paths end the same. Version 1 is the whole schema as the SQLite
memory had it at its version 5 (tasks, threads, turns, posts, intents, placeholders, channels and
recall, personas, job runs) plus what several replicas need to share one database (replicas,
leases). Each part keeps its DDL beside the code that uses it; this file only orders them.
"""

from __future__ import annotations

from engine.memory.pg.schema_admin import ADMIN_SCHEMA
from engine.memory.pg.schema_coordination import COORDINATION_SCHEMA
from engine.memory.pg.schema_core import CORE_SCHEMA

SCHEMA_VERSION = 1

MIGRATIONS: dict[int, str] = {
    1: CORE_SCHEMA + ADMIN_SCHEMA + COORDINATION_SCHEMA,
}
