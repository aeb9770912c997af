"""Test-only fault hook: die at a named moment, so crash tests hit exact points.

Inert unless the environment variable `_ORCHESTRA_CRASH_AT` names a point (`posted`, or
`posted:3` for its third passage); then the process kills itself with SIGKILL there, as a power
cut would. The name starts with an underscore so that the settings' check for misspelt
`ORCHESTRA_*` keys leaves it alone: it is not a setting. The points:

    posted               the platform took a post; its record is not written yet
    placeholder_posted   a "thinking" placeholder is up; its record is not written yet
    notice_posted        a pause / turn-limit notice is out; the new state is not stored yet
    turn_posted          a turn (and its question / completion notice) is out; its state is not
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("_ORCHESTRA_CRASH_AT", "")
_POINT, _, _NTH = _SPEC.partition(":")
_seen = 0


def crash_point(name: str) -> None:
    """SIGKILL this process if the test asked to die here (no-op otherwise)."""
    global _seen
    if not _SPEC or name != _POINT:
        return
    _seen += 1
    if _seen >= int(_NTH or 1):
        os.kill(os.getpid(), signal.SIGKILL)
