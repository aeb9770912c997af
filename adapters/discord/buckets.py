"""discord.py's rate-limit buckets, swept once a minute instead of at every new bucket.

discord.py keeps one rate-limit bucket per route and channel, webhook or interaction. Once it
holds 256, every new bucket makes it scan them all for inactive ones (none can be: a bucket is
inactive only 300 s after its last request). A burst of 200 mentions in 200 channels makes about
a thousand buckets, so those scans grow with the square of the burst (~150,000 checks for 200
mentions and 200 `/investigate`, about 0.3 s of the bot's CPU). Sweeping at most once a minute
frees the same buckets, a little later, for a scan a minute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import discord

#: Seconds between two sweeps; discord.py lets a bucket go after 300 s without requests.
SWEEP_EVERY = 60.0


def sweep_rarely(http: discord.http.HTTPClient, every: float = SWEEP_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
    """Make `http` sweep its inactive buckets at most once every `every` seconds."""
    sweep = http._try_clear_expired_ratelimits
    last = -math.inf

    def sweep_now_and_then() -> None:
        nonlocal last
        if len(http._buckets) < 256:  # discord.py's own threshold: nothing to sweep yet
            return
        now = clock()
        if now - last < every:
            return
        last = now
        sweep()

    http._try_clear_expired_ratelimits = sweep_now_and_then  # type: ignore[method-assign]
