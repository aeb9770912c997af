"""SQLite memory: tasks, threads, turns, posts and per-channel recall, via one aiosqlite connection.

`SQLiteMemory` is the engine's memory, put together from one part per idea, each a subclass of
the connection it shares:

- `engine.memory.connection`: the connection, opening (schema, migrations), group commit and
  background checkpoints;
- `engine.memory.tasks`: accepting tasks exactly once, and their status;
- `engine.memory.threads`: threads, their readable ids, and their turns;
- `engine.memory.posts`: posts, intents and placeholders (posting exactly once);
- `engine.memory.channels`: a channel's memory as a whole: recall, export, forget;
- `engine.memory.personas`: the last good persona set of each source, and persona changes.
- `engine.memory.maintenance`: what the scheduled jobs ask (waiting investigations, a channel's
  open work) and retention.
- `engine.memory.jobs`: scheduled jobs' runs (claimed once per due time).
- `engine.memory.api_queries`: what only the operator API asks (task lists, a task's turns).
- `engine.memory.investigation_queries`: investigations across channels, for the operator API.
- `engine.memory.recent_places`: where work arrived lately (what Discord reads again after a restart).

The schema and the row <-> record conversion live in `engine.memory.schema`; recall's terms, SQL
and ranking in `engine.memory.recall`.
"""

from __future__ import annotations

from engine.memory.api_queries import ApiQueries
from engine.memory.channels import ChannelMemory
from engine.memory.connection import MemoryVersionError
from engine.memory.investigation_queries import InvestigationQueries
from engine.memory.jobs import JobRunStore
from engine.memory.maintenance import Maintenance
from engine.memory.personas import PersonaMemory
from engine.memory.posts import PostStore
from engine.memory.recent_places import RecentPlaces
from engine.memory.tasks import TaskStore
from engine.memory.threads import ThreadStore

__all__ = ["MemoryVersionError", "SQLiteMemory"]


class SQLiteMemory(
    TaskStore, ThreadStore, PostStore, ChannelMemory, PersonaMemory, Maintenance, JobRunStore, ApiQueries,
    InvestigationQueries, RecentPlaces,
):
    """The engine's memory. Open with `await SQLiteMemory.open(path)`; `close()` when done."""
