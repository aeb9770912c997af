"""A bound on the model calls in flight at once (ORCHESTRA_MAX_MODEL_CALLS).

Why: under a burst every mention wants its model call at the same moment. Unbounded, the
event loop spends its time sending hundreds of requests (and the SDK's connection pool, whose
bookkeeping grows with the connections it holds, gets slower per request), while answers that
came back wait to be posted: seconds without a single post. Bounded, a call starts only when
one has finished, so finished work is posted before more is started, and the pool holds a
steady set of kept-alive connections. Waiters are served in arrival order (asyncio's semaphore
is FIFO), so no mention is starved.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engine.ports import ModelRequest, ModelResponse, Provider


class CallLimit:
    """A `Provider` that lets at most `limit` calls of `inner` run at once; anything else
    (`name`, `model`, `warm_up`, `aclose`…) is the inner provider's."""

    def __init__(self, inner: Provider, limit: int):
        if limit < 1:
            raise ValueError("the model call limit must be at least 1")
        self.inner = inner
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self.name = inner.name

    @property
    def in_flight(self) -> int:
        return self.limit - self._slots._value  # noqa: SLF001 - only for tests and the log

    async def generate(self, request: ModelRequest) -> ModelResponse:
        async with self._slots:
            return await self.inner.generate(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
