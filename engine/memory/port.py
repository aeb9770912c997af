"""The memory port: what the engine, the bot, the adapters and the jobs ask of the memory.

Two implementations keep it: `SQLiteMemory` (engine.memory.store, the embedded default) and
`PostgresMemory` (engine.memory.pg.store, shared by several replicas). `open_memory`
(engine.memory.open) picks one from `ORCHESTRA_DB`; everything above it names only `Memory`, so
nothing there knows which is in use. tests/test_memory_port.py fails when the two drift apart
or either leaves the port.

The records it speaks in are the ones both implementations share (engine.memory.records and the
small result types beside the SQLite parts); the guarantees are the same on both: an event
accepted once (`Accepted.duplicate`), a post made once, a job's due time claimed once.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.memory.api_queries import TaskRow
    from engine.memory.jobs import JobRun
    from engine.memory.maintenance import PruneResult
    from engine.memory.personas import PersonaChange, PersonaSet
    from engine.memory.records import (
        ForgetResult,
        Placeholder,
        RecentPlace,
        Recollection,
        StoredTask,
        TaskStatus,
        ThreadRecord,
        ThreadStatus,
        ThreadSummary,
        TurnRecord,
    )
    from engine.models import Accepted, Task


class Memory(Protocol):
    """The engine's memory, whichever database holds it. Close it when done."""

    async def close(self) -> None: ...

    # -- tasks: accepted exactly once per platform event, then their status ------------------------

    async def accept_task(self, task: Task) -> Accepted:
        """Store the task; a known (platform, workspace, event_id) comes back `duplicate`.
        Raises `TaskRefused` for a task that cannot be stored."""
        ...

    async def set_task_status(self, task_id: int, status: TaskStatus, error: str | None = None) -> None: ...

    async def get_task(self, task_id: int) -> StoredTask | None: ...

    async def unfinished_tasks(self) -> list[StoredTask]: ...

    # -- threads and their turns ------------------------------------------------------------------

    async def thread_id_for_task(self, task_id: int, stem: str) -> str:
        """The readable id (stem + n) of the thread task `task_id` opens: the same one on a resume."""
        ...

    async def create_thread(self, rec: ThreadRecord) -> ThreadRecord: ...

    async def update_thread(self, rec: ThreadRecord) -> ThreadRecord: ...

    async def get_thread(self, thread_id: str) -> ThreadRecord | None: ...

    async def find_thread(self, platform: str, workspace: str, channel: str, thread: str) -> ThreadRecord | None: ...

    async def list_threads(
        self, platform: str, workspace: str, channel: str, *, statuses: set[ThreadStatus] | None = None
    ) -> list[ThreadSummary]: ...

    async def recent_places(self, platform: str, since: datetime, *, limit: int = 1000) -> list[RecentPlace]:
        """Where `platform` had work since `since` (a channel's top level, or a thread), most
        recently active first, each with the event id of the message task stored last there:
        what an adapter whose platform never sends missed messages again reads after a restart."""
        ...

    async def stalled_threads(self, older_than: datetime) -> list[ThreadRecord]: ...

    async def add_turn(self, turn: TurnRecord) -> TurnRecord: ...

    async def turns(self, thread_id: str) -> list[TurnRecord]: ...

    async def turn_for_task(self, task_id: int, step: int, role: str = "persona") -> TurnRecord | None: ...

    async def count_turns(self, platform: str, workspace: str, channel: str) -> int: ...

    # -- posts, intents and placeholders: posting exactly once ------------------------------------

    async def record_post(
        self, key: str, *, task_id: int | None, platform: str, workspace: str, channel: str, thread: str | None,
        message_id: str, persona: str, thread_id: str | None,
    ) -> None: ...

    async def post_for_key(self, key: str) -> str | None: ...

    async def persona_for_message(self, platform: str, workspace: str, channel: str, message_id: str) -> str | None: ...

    async def record_intent(
        self, key: str, *, task_id: int | None, platform: str, workspace: str, channel: str, thread: str | None
    ) -> None: ...

    async def has_intent(self, key: str) -> bool: ...

    async def placeholder_for(
        self, platform: str, workspace: str, channel: str, thread: str | None, persona: str
    ) -> Placeholder | None: ...

    async def placeholders(self, task_id: int | None = None) -> list[Placeholder]: ...

    async def record_placeholder(self, p: Placeholder) -> None: ...

    async def drop_placeholder(self, key: str) -> None: ...

    # -- a channel's memory as a whole: recall (never across channels), export, forget -----------

    async def recall(
        self, platform: str, workspace: str, channel: str, query: str, *, exclude_thread: str | None = None,
        limit: int = 5,
    ) -> list[Recollection]: ...

    async def export_channel(self, platform: str, workspace: str, channel: str) -> dict: ...

    async def forget_channel(self, platform: str, workspace: str, channel: str) -> ForgetResult: ...

    # -- personas: the last good set of each source, and the history of changes -------------------

    async def save_persona_set(
        self, source: str, personas: list[dict[str, Any]], loaded_at: datetime | None = None
    ) -> None: ...

    async def last_persona_set(self, source: str) -> PersonaSet | None: ...

    async def record_persona_change(
        self, persona: str, *, source: str, actor: str, action: str, changes: dict[str, Any],
        at: datetime | None = None,
    ) -> int:
        """Raises ValueError for an action outside `engine.memory.personas.ACTIONS`."""
        ...

    async def persona_changes(self, name: str) -> list[PersonaChange]: ...

    # -- maintenance: what the scheduled jobs ask (nudges, digests) and retention -----------------

    async def waiting_investigations(self, idle_since: datetime) -> list[ThreadRecord]: ...

    async def answered_since_wait(self, thread_id: str) -> bool: ...

    async def open_investigations(self, platform: str, workspace: str | None, channel: str) -> list[ThreadRecord]: ...

    async def latest_post_key(self, thread_id: str) -> str | None: ...

    async def prune(self, before: datetime) -> PruneResult: ...

    # -- scheduled jobs' runs: each (job, due) claimed once, across processes ---------------------

    async def claim_run(self, job: str, due: datetime, started_at: datetime) -> bool: ...

    async def finish_run(self, job: str, due: datetime, outcome: str, detail: str, finished_at: datetime) -> None: ...

    async def skip_run(self, job: str, due: datetime, detail: str, at: datetime) -> bool: ...

    async def last_runs(self) -> dict[str, JobRun]: ...

    async def job_runs(self, job: str) -> list[JobRun]: ...

    # -- the operator API: liveness, task listings, what a task produced, investigations ---------

    async def ping(self) -> None:
        """Raises when the database does not answer."""
        ...

    async def api_task(self, platform: str, task_id: int) -> TaskRow | None: ...

    async def api_task_by_event(self, platform: str, workspace: str, event_id: str) -> TaskRow | None: ...

    async def api_tasks(
        self, platform: str, *, status: str | None = None, channel: str | None = None, persona: str | None = None,
        since: datetime | None = None, before_id: int | None = None, limit: int = 50,
    ) -> list[TaskRow]: ...

    async def task_turns(self, task_id: int) -> list[TurnRecord]: ...

    async def task_thread(self, task_id: int) -> ThreadRecord | None: ...

    async def investigations_page(
        self, *, platform: str | None = None, channel: str | None = None, status: str | None = None,
        after: tuple[datetime, str] | None = None, limit: int = 50,
    ) -> list[ThreadRecord]: ...
