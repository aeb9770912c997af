"""Replicas: what the engine needs so that one process, or several sharing one database, keep the
same promises: a thread's turns one at a time and in order, and no accepted task left behind.

The engine talks to a `Replica` (the port), never to locks or SQL:

- `hold_task(stored)`: the task's own lane (its platform thread). A task runs only after the
  earlier unfinished tasks of its lane, one at a time.
- `hold(key, task_id)`: a further lane, one holder at a time (an investigation's thread, which
  spans several platform threads; a scheduled nudge into it).
- `own(task_id)`: this replica took the task (accepted it); nobody else runs it while it lives.
- `claim_orphans(platforms)`: unfinished tasks nobody alive runs, now this replica's to resume.
- `orphans_waiting()`: returns when there may be such tasks (a replica died): the engine's sweep
  waits on it, so an idle replica does not look for them on its own.
- `start()` / `stop()`: begin and end this replica's life (a heartbeat, for shared ones).

Two implementations:

- `LocalReplica` (one process, SQLite): in-process lanes (`engine.lanes.Lanes`); the orphans
  are the unfinished tasks found at start. Exactly what a single process has always done.
- `SharedReplica` (engine.shared_replica; several processes on one database, whose memory
  offers `Coordination`, e.g. `engine.memory.pg.coordination`): the same in-process lanes in
  front, so that waiters inside one process never poll the database, and behind them a lease
  per lane in the database, a heartbeat per replica, and an owner per task. Waiters are woken
  by the database when a lane is freed (LISTEN/NOTIFY), with a slow poll as a backstop (a
  holder that died frees its lanes only when its heartbeat is too old). The heartbeat also says
  whether a dead replica left tasks behind: it is an idle replica's only statement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Hashable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from engine.lanes import Lanes
from engine.memory.records import StoredTask

log = logging.getLogger(__name__)

class TaskTaken(Exception):
    """The task is another replica's now (it took it over, believing this one dead): leave it."""


#: How long a replica's heartbeat stays good: past it, its tasks and lanes go to the others.
DEFAULT_LEASE = 15.0


class Replica(Protocol):
    """This process's part in running tasks (see the module docstring)."""

    #: Seconds between two looks for orphaned tasks; None: only at start (one process).
    sweep_every: float | None

    async def orphans_waiting(self) -> None:
        """Returns when unfinished tasks may wait for a new owner (a replica died): time to
        `claim_orphans`. Shared replicas learn it from their heartbeat, every `sweep_every` s."""
        ...

    def hold_task(self, stored: StoredTask) -> AbstractAsyncContextManager[None]: ...

    def hold(self, key: Hashable, task_id: int | None = None) -> AbstractAsyncContextManager[None]: ...

    async def own(self, task_id: int) -> bool:
        """False: another replica has the task (it took it over): leave it to that one."""
        ...

    async def claim_orphans(self, platforms: Collection[str]) -> list[StoredTask]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def __len__(self) -> int:
        """Lanes busy in this process (a turn running or waiting): for metrics."""
        ...


class LocalReplica:
    """One process: in-process lanes, and the orphans are whatever is unfinished at start."""

    sweep_every: float | None = None

    def __init__(self, memory) -> None:
        self.memory = memory
        self.lanes = Lanes()

    def hold_task(self, stored: StoredTask) -> AbstractAsyncContextManager[None]:
        return self.lanes.hold(stored.task.thread_key)

    def hold(self, key: Hashable, task_id: int | None = None) -> AbstractAsyncContextManager[None]:
        return self.lanes.hold(key)

    async def own(self, task_id: int) -> bool:
        """Nothing to record: no other process could take it."""
        return True

    async def orphans_waiting(self) -> None:
        """Never: one process has no other replica to die (its orphans are found at start)."""
        await asyncio.Event().wait()

    async def claim_orphans(self, platforms: Collection[str]) -> list[StoredTask]:
        return [s for s in await self.memory.unfinished_tasks() if s.task.platform in platforms]

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self.lanes)


# --- several replicas on one database -----------------------------------------------------------


@runtime_checkable
class Coordination(Protocol):
    """What a memory shared by several replicas offers them (`engine.memory.pg.coordination`).
    Every method is one statement, atomic against the other replicas; `lease` is in seconds."""

    async def replica_alive(self, replica: str, lease: float | None = None, platforms: Collection[str] = ()) -> bool:
        """Heartbeat: this replica is alive now. With `lease` and `platforms`, in the same
        statement: True when an unfinished task of those platforms waits for a new owner (what
        `claim_orphans` would take), so that looking for dead replicas' work costs nothing more."""

    async def replica_gone(self, replica: str) -> None:
        """This replica stops: its tasks and lanes are the others' at once."""

    async def own_task(self, replica: str, task_id: int) -> bool:
        """Record the replica as the task's owner; False when another replica owns it already."""

    async def take_lane(self, replica: str, key: str, task_id: int | None, lease: float,
                        task_lane: tuple[str, str, str, str] | None = None) -> bool | None:
        """Take the lane if its holder is gone (or dead for `lease`); with `task_lane` (the task's
        platform, workspace, channel, thread), only once no earlier task of it is unfinished, and
        None when the task is no longer this replica's (another took it over)."""

    async def free_lane(self, replica: str, key: str, task_id: int | None, *, task_ended: bool = False) -> None:
        """Free the lane and wake its waiters; `task_ended`: the task's work here is over (its
        owner row goes when it finished; when it did not, it waits for this replica's end)."""

    async def claim_orphans(self, replica: str, platforms: Collection[str], lease: float) -> list[StoredTask]: ...

    async def listen_lanes(self, wake: Callable[[str], None]) -> Callable[[], Awaitable[None]]:
        """Call `wake(key)` when another replica frees a lane; returns how to stop listening."""


def replica_for(memory, *, lease: float = DEFAULT_LEASE) -> Replica:
    """The replica that fits the memory: shared when the memory coordinates replicas."""
    if isinstance(memory, Coordination):
        from engine.shared_replica import SharedReplica

        return SharedReplica(memory, lease=lease)
    return LocalReplica(memory)
