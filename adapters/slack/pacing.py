"""Outbound pacing: about one post per second per channel, short bursts allowed.

Slack allows roughly one `chat.postMessage` per second per channel and answers 429 beyond
that. Waiting here first keeps us under the limit; a 429 that still happens is waited out by
slack_sdk's `AsyncRateLimitErrorRetryHandler`. Each channel has its own bucket and lock, so a
busy channel never delays another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    updated: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ChannelPacer:
    """A token bucket per channel: `burst` posts at once, then `rate` per second."""

    def __init__(
        self,
        rate: float = 1.0,
        burst: int = 3,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_channels: int = 10_000,
    ):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._max_channels = max_channels
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, channel: str) -> _Bucket:
        bucket = self._buckets.get(channel)
        if bucket is None:
            if len(self._buckets) >= self._max_channels:
                self._forget_idle()
            bucket = self._buckets[channel] = _Bucket(tokens=float(self.burst), updated=self._clock())
        return bucket

    def _forget_idle(self) -> None:
        """Drop buckets that have refilled completely: they hold no information."""
        now = self._clock()
        for channel, b in list(self._buckets.items()):
            if not b.lock.locked() and b.tokens + (now - b.updated) * self.rate >= self.burst:
                del self._buckets[channel]

    async def acquire(self, channel: str) -> float:
        """Wait for this channel's turn; return how long we waited (seconds)."""
        bucket = self._bucket(channel)
        waited = 0.0
        async with bucket.lock:  # FIFO per channel: posts keep their order
            while True:
                now = self._clock()
                bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
                bucket.updated = now
                if bucket.tokens >= 1:
                    bucket.tokens -= 1
                    return waited
                delay = (1 - bucket.tokens) / self.rate
                waited += delay
                await self._sleep(delay)
