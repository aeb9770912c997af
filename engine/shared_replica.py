"""`SharedReplica`: one of several replicas sharing a database (the port and the single-process
replica are in `engine.replicas`).

Per lane key, this process lets only its first waiter ask the database (by task id for a task's
own lane, by arrival for the others); the others wait in memory, woken when the lane is freed
here, when the database announces it was freed elsewhere (LISTEN/NOTIFY), or by a slow poll (a
holder that died frees its lanes only once its heartbeat is older than the lease).

The heartbeat (every lease/3 s) also tells whether a dead replica left tasks behind
(`orphans_waiting`); only then does the engine's sweep claim them. An idle replica's only
statement is its heartbeat.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from engine.memory.records import StoredTask
from engine.replicas import DEFAULT_LEASE, Coordination, TaskTaken

log = logging.getLogger(__name__)


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
        # one heartbeat every lease/3 s; it also says whether dead replicas left tasks behind
        self.sweep_every = max(lease / 3, 0.05)
        self._platforms: tuple[str, ...] = ()  # the platforms this replica resumes tasks of
        self._orphans = asyncio.Event()  # set by a heartbeat that saw tasks waiting for an owner
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
            await asyncio.sleep(self.sweep_every)
            try:
                if await self.store.replica_alive(self.id, self.lease, self._platforms):
                    self._orphans.set()
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

    async def orphans_waiting(self) -> None:
        """Returns once a heartbeat saw unfinished tasks of this replica's platforms (those of its
        last `claim_orphans`) waiting for a new owner; an idle replica never asks otherwise."""
        await self._orphans.wait()
        self._orphans.clear()

    async def claim_orphans(self, platforms: Collection[str]) -> list[StoredTask]:
        self._platforms = tuple(sorted(platforms))
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
