"""Retention: forget finished work older than the limit, keeping open investigations whole.

What goes, and why it stays consistent (recall finds what remains and nothing deleted):
`engine.memory.maintenance`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.memory.port import Memory

log = logging.getLogger(__name__)


async def prune_memory(memory: Memory, now: datetime, keep_days: int) -> int:
    """Delete what finished more than `keep_days` before `now`; how many records went.

    `keep_days` 0 keeps everything for ever (ORCHESTRA_RETENTION_DAYS=0).
    """
    if keep_days <= 0:
        return 0
    result = await memory.prune(now - timedelta(days=keep_days))
    if result.total:
        log.info("retention: removed %s", result.model_dump())
    return result.total


def expire_caches(engine: Engine) -> str:
    """Drop the engine's in-memory caches after retention, so a pruned thread is not taken for a
    known one (its replies would reach the engine instead of being ignored as unknown)."""
    held = engine.expire_caches()
    return f"{held} cached thread{'s' if held != 1 else ''} forgotten"
