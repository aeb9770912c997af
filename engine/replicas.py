"""Replicas: what the engine needs so that one process, or several sharing one database, keep the
same promises: a thread's turns one at a time and in order, and no accepted task left behind.

The engine talks to a `Replica` (the port), never to locks or SQL:

- `hold_task(stored)`: the task's own lane (its platform thread). A task runs only after the
  earlier unfinished tasks of its lane, one at a time.
- `hold(key, task_id)`: a further lane, one holder at a time (an investigation's thread, which
  spans several platform threads; a scheduled nudge into it).
- `own(task_id)`: this replica took the task (accepted it); nobody else runs it while it lives.
- `claim_orphans(platforms)`: unfinished tasks nobody alive runs, now this replica's to resume.
- `start()` / `stop()`: begin and end this replica's life (a heartbeat, for shared ones).

Two implementations:

- `LocalReplica` (one process, SQLite): in-process lanes (`engine.lanes.Lanes`); the orphans
  are the unfinished tasks found at start. Exactly what a single process has always done.
- `SharedReplica` (several processes on one database, `engine.memory.pg.coordination`): the
  same in-process lanes in front, so that waiters inside one process never poll the database,
  and behind them a lease per lane in the database, a heartbeat per replica, and an owner per
  task. Waiters are woken by the database when a lane is freed (LISTEN/NOTIFY), with a slow
  poll as a backstop (a holder that died frees its lanes only when its heartbeat is too old).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
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

    async def replica_alive(self, replica: str) -> None:
        """Heartbeat: this replica is alive now."""

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


def lane_key(key: Hashable) -> str:
    """The lane's name in the database: its key as JSON text."""
    return json.dumps(key, default=str, separators=(",", ":"))


@dataclass
class _Lane:
    """A lane as this process sees it: who waits (by rank), and whether one of ours has it (or
    is asking the database for it)."""

    pending: set[int] = field(default_factory=set)
    busy: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class SharedReplica:
    """One of several replicas sharing a database (see the module docstring).

    In front, per key, this process lets only its first waiter (by task id for a task's own lane,
    by arrival for the others) ask the database; the others wait in memory.
    """

    def __init__(self, store: Coordination, *, lease: float = DEFAULT_LEASE, poll: float | None = None,
                 replica_id: str | None = None) -> None:
        self.store = store
        self.lease = lease
        self.id = replica_id or uuid.uuid4().hex[:16]
        self.poll = poll if poll is not None else min(2.0, lease / 3)
        self.sweep_every = max(lease / 3, 0.05)
        self._lanes: dict[str, _Lane] = {}
        self._arrivals = 0
        self._heart: asyncio.Task | None = None
        self._unlisten: Callable[[], Awaitable[None]] | None = None

    # --- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._heart is not None:
            return
        await self.store.replica_alive(self.id)
        log.info("replica %s: sharing the memory with other replicas (lease %s s)", self.id, self.lease)
        self._heart = asyncio.create_task(self._beat(), name=f"replica-{self.id}-heartbeat")
        try:
            self._unlisten = await self.store.listen_lanes(self._woken)
        except Exception:  # noqa: BLE001 - the poll still wakes waiters, only later
            log.warning("cannot listen for freed lanes; waiters poll instead", exc_info=True)

    async def stop(self) -> None:
        """Tell the others at once: they take this replica's unfinished tasks and its lanes."""
        if self._heart is None:
            return
        self._heart.cancel()
        await asyncio.gather(self._heart, return_exceptions=True)
        self._heart = None
        if self._unlisten is not None:
            try:
                await self._unlisten()
            except Exception:  # noqa: BLE001
                log.debug("unlisten failed", exc_info=True)
            self._unlisten = None
        try:
            await self.store.replica_gone(self.id)
        except Exception:  # noqa: BLE001 - the lease runs out on its own
            log.warning("could not sign off replica %s; the others wait for its lease", self.id, exc_info=True)

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.store.replica_alive(self.id)
            except Exception:  # noqa: BLE001 - try again on the next beat
                log.warning("replica heartbeat failed", exc_info=True)
                continue
            now = loop.time()
            if now - last > self.lease:  # the others may have taken this replica's work meanwhile
                log.error("replica %s: no heartbeat for %.1f s, past the lease (%s s): other replicas may have "
                          "taken over its unfinished tasks; raise ORCHESTRA_REPLICA_LEASE if this recurs",
                          self.id, now - last, self.lease)
            last = now

    def _woken(self, key: str) -> None:
        lane = self._lanes.get(key)
        if lane is not None:
            lane.wake()

    # --- tasks --------------------------------------------------------------------------------

    async def own(self, task_id: int) -> bool:
        await self.start()  # a process that never started (a CLI command) is alive while it works
        return await self.store.own_task(self.id, task_id)

    async def claim_orphans(self, platforms: Collection[str]) -> list[StoredTask]:
        if not platforms:
            return []
        claimed = await self.store.claim_orphans(self.id, sorted(platforms), self.lease)
        if claimed:
            log.info("replica %s claimed task(s) %s", self.id, ", ".join(str(s.id) for s in claimed))
        return claimed

    def hold_task(self, stored: StoredTask) -> AbstractAsyncContextManager[None]:
        t = stored.task
        where = (t.platform, t.workspace, t.channel, t.thread or t.event_id)
        return self._hold(lane_key(("task", *where)), stored.id, stored.id, where)

    def hold(self, key: Hashable, task_id: int | None = None) -> AbstractAsyncContextManager[None]:
        self._arrivals += 1
        return self._hold(lane_key(key), task_id, self._arrivals, None)

    @asynccontextmanager
    async def _hold(self, key: str, task_id: int | None, rank: int,
                    task_lane: tuple[str, str, str, str] | None) -> AsyncIterator[None]:
        lane = self._lanes.setdefault(key, _Lane())
        lane.pending.add(rank)
        lane.wake()  # a lower rank arrived: the one asking steps back after its try
        held = False
        try:
            while True:
                changed = lane.changed
                if not lane.busy and rank == min(lane.pending):
                    lane.busy = True
                    try:
                        got = await self.store.take_lane(self.id, key, task_id, self.lease, task_lane)
                        held = bool(got)
                    finally:
                        if not held:
                            lane.busy = False
                    if got is None:
                        raise TaskTaken(f"task {task_id} was taken over by another replica")
                    if held:
                        break
                    if rank != min(lane.pending):
                        lane.wake()
                try:
                    await asyncio.wait_for(changed.wait(), self.poll)
                except TimeoutError:
                    pass
            yield
        finally:
            try:
                if held:
                    await self.store.free_lane(self.id, key, task_id, task_ended=task_lane is not None)
            except Exception:  # noqa: BLE001 - the lease ends with this replica at worst
                log.warning("could not free lane %s", key, exc_info=True)
            finally:
                if held:
                    lane.busy = False
                lane.pending.discard(rank)
                lane.wake()
                if not lane.pending and not lane.busy:
                    self._lanes.pop(key, None)

    def __len__(self) -> int:
        return len(self._lanes)


def replica_for(memory, *, lease: float = DEFAULT_LEASE) -> Replica:
    """The replica that fits the memory: shared when the memory coordinates replicas."""
    if isinstance(memory, Coordination):
        return SharedReplica(memory, lease=lease)
    return LocalReplica(memory)
