"""Acknowledgements first: work waits while a platform still owes one.

A platform's acknowledgement (a Socket Mode ack, an HTTP 200, a deferred interaction) goes out
only once the event is stored, and it must not queue behind the CPU of other events' work: in a
burst of hundreds of mentions the event loop runs every ready callback in turn, so an ack needs
its few loop turns while nothing else is ready, or it waits behind all of them. So an adapter
says when it starts and finishes taking an event (`taking()`, around storing it and sending the
ack), and the engine starts (or resumes between steps) a task's work only once no ack is owed.
An ack that never finishes (a stuck socket) cannot stall work for long: `patience` bounds it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Intake:
    """How many acknowledgements are owed right now, and a way to wait until none is."""

    def __init__(self, patience: float = 0.5) -> None:
        self.patience = patience
        self.owed = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @asynccontextmanager
    async def taking(self) -> AsyncIterator[None]:
        """Around storing one event and acknowledging it."""
        self.owed += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self.owed -= 1
            if self.owed == 0:
                self._quiet.set()

    async def settled(self) -> None:
        """Return once no acknowledgement is owed (or after `patience` seconds)."""
        if self.owed == 0:
            return
        try:
            await asyncio.wait_for(self._quiet.wait(), self.patience)
        except asyncio.TimeoutError:
            pass
