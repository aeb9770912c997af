"""Acknowledgements first: work waits for the acknowledgements owed before it.

A platform's acknowledgement (a Socket Mode ack, an HTTP 200, a deferred interaction) goes out
only once the event is stored, and it must not queue behind the CPU of other events' work: in a
burst of hundreds of mentions the event loop runs every ready callback in turn, so an ack needs
its few loop turns while little else is ready, or it waits behind all of them. So an adapter says
when it starts and finishes taking an event (`taking()`, around storing it and sending the ack),
and the engine, before it starts a task's work or sends a post (`settled()`), waits until every
acknowledgement that was owed at that moment has gone out. Only those: acks of events that arrive
later do not hold it back, so a steady stream of events cannot starve work that was waiting.
An ack that never finishes (a stuck socket) holds nothing for longer than `patience` seconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class Intake:
    """The acknowledgements owed right now, numbered in arrival order."""

    def __init__(self, patience: float = 0.5) -> None:
        self.patience = patience
        self._next = 0  # the number the next event taken gets
        self._open: list[int] = []  # heap of the numbers taken, finished ones removed lazily
        self._finished: set[int] = set()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # (last number awaited, tie, future)
        self._tie = itertools.count()

    @property
    def owed(self) -> int:
        return len(self._open) - len(self._finished)

    def taking(self) -> "Taking":
        """Around storing one event and acknowledging it: `async with intake.taking(): ...`."""
        return Taking(self)

    def _take(self) -> int:
        number = self._next
        self._next += 1
        heapq.heappush(self._open, number)
        return number

    def _done(self, number: int) -> None:
        self._finished.add(number)
        self._advance()

    async def settled(self) -> None:
        """Return once every acknowledgement owed now has gone out (or after `patience` s)."""
        last = self._next - 1
        if self._oldest_owed() > last:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (last, next(self._tie), future))
        try:
            await asyncio.wait_for(asyncio.shield(future), self.patience)
        except asyncio.TimeoutError:
            pass

    def _oldest_owed(self) -> int:
        return self._open[0] if self._open else self._next

    def _advance(self) -> None:
        while self._open and self._open[0] in self._finished:
            self._finished.discard(heapq.heappop(self._open))
        oldest = self._oldest_owed()
        while self._waiters and self._waiters[0][0] < oldest:
            future = heapq.heappop(self._waiters)[2]
            if not future.done():
                future.set_result(None)


class Taking:
    """`Intake.taking()`'s context: a plain class, because it runs once per event on the ack path,
    where a generator-based context manager (`contextlib.asynccontextmanager`) cost about a third
    of the CPU of taking a Socket Mode envelope in a burst."""

    __slots__ = ("_intake", "_number")

    def __init__(self, intake: Intake) -> None:
        self._intake = intake
        self._number = -1

    async def __aenter__(self) -> None:
        self._number = self._intake._take()

    async def __aexit__(self, *exc: object) -> None:
        self._intake._done(self._number)
