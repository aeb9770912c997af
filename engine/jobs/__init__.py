"""The engine's scheduled jobs: what Orchestra does between messages.

Each is a plain async function of the engine's parts and `now` (the clock is the caller's, so
tests never sleep); the scheduler (`bot/jobs.py`) decides when they run and records each run.
Everything they post goes through the engine's `Poster` like any reply: paced and split by the
adapter, in a persona's voice, under a key, so a restart never posts the same nudge or digest
twice.

- `nudge_waiting`: remind a thread whose investigation has waited on people too long (once a wait);
- `send_digests`: a channel's open investigations, once a day per channel;
- `prune_memory`: retention, finished work older than the limit (then `expire_caches`).

Personas are refreshed by `engine.personas.live.LivePersonas` (Notion or the personas file), which
the scheduler's `refresh-personas` job asks to reload.
"""

from engine.jobs.digest import digest_key, send_digests
from engine.jobs.nudges import nudge_key, nudge_waiting
from engine.jobs.retention import expire_caches, prune_memory

__all__ = [
    "digest_key",
    "expire_caches",
    "nudge_key",
    "nudge_waiting",
    "prune_memory",
    "send_digests",
]
