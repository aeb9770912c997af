"""What every chat adapter's listeners share: the engine as they see it, and the work they start
after an acknowledgement.

- `EnginePort`: the few engine methods a listener calls (`engine.engine.Engine` has them all).
- `AfterAck`: posts, private answers and button updates run in the background, after the
  platform has its acknowledgement (which waits only for the task to be stored), so they never
  put Slack's or Discord's 3-second window at risk; a failure there is one log line, because
  the task itself is already safe in SQLite.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from engine.memory.records import ForgetResult, RecentPlace, ThreadSummary
from engine.models import Accepted, Task


class EnginePort(Protocol):
    """What the adapters need from the engine."""

    personas: Any  # the live registry (Discord completes persona names from it)

    async def submit(self, task: Task) -> Accepted: ...
    async def is_known_thread(self, platform: str, workspace: str, channel: str, thread: str) -> bool: ...
    async def recent_places(self, platform: str, since: datetime, *, limit: int = 1000) -> list[RecentPlace]: ...
    async def memory_list(self, platform: str, workspace: str, channel: str) -> list[ThreadSummary]: ...
    async def memory_forget(self, platform: str, workspace: str, channel: str) -> ForgetResult: ...
    def persona_card(self, name: str) -> str | None: ...
    def personas_overview(self) -> str: ...


def knows_persona(engine: EnginePort, name: str) -> bool:
    """Whether `name` is a persona, asked of the live registry: a command checks this before its
    acknowledgement, and rendering the persona's card (`persona_card`) only to see whether there
    is one cost about a tenth of a Discord `/investigate`'s CPU before its answer."""
    registry = getattr(engine, "personas", None)
    get = getattr(registry, "get", None)
    if callable(get):
        return get(name) is not None
    return engine.persona_card(name) is not None


class AfterAck:
    """Background work started by listeners, kept so that `idle()` can wait for it."""

    def __init__(self, platform: str, log: logging.Logger, describe: Callable[[Exception], str | None] = lambda e: None):
        self.platform, self.log, self.describe = platform, log, describe
        self._jobs: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """How many are still running (a listener with none is idle)."""
        return len(self._jobs)

    def later(self, work: Awaitable[Any], what: str) -> None:
        """Run `work` after the acknowledgement; `what` names it in the log if it fails."""

        async def run() -> None:
            try:
                await work
            except Exception as e:  # noqa: BLE001 - the task is stored; this is only what we say
                self.log.warning("%s: could not %s: %s", self.platform, what, self.describe(e) or type(e).__name__)

        job = asyncio.create_task(run(), name=f"{self.platform.lower()}-after-ack: {what}")
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def idle(self) -> None:
        """Until the work started so far (and what it starts in turn) is done: tests, shutdown."""
        while self._jobs:
            await asyncio.gather(*list(self._jobs), return_exceptions=True)
