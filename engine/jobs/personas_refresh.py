"""Persona refresh from the YAML file: reload it when it changed on disk.

(The Notion source refreshes through its own `LivePersonas`; this covers the file.) The new set
takes the place of the old inside the same registry object, which the engine, its flows and the
casting all hold, so the next turn speaks with the new personas. A file that does not load, or
that drops a persona the cast or the default needs, is reported and the current personas stay.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from engine.personas import PersonaConfigError, PersonaRegistry

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger(__name__)

#: The file's modification time (ns) when each registry last read it.
_seen: weakref.WeakKeyDictionary[PersonaRegistry, tuple[Path, int]] = weakref.WeakKeyDictionary()


async def refresh_personas(engine: Engine, path: str | Path | None = None) -> str:
    """Reload `path` into `engine.personas` if its modification time changed; a one-line outcome.

    No path (the built-in personas): nothing to refresh. The first call reads the file once (a
    change made between start-up and that call is not missed); the same personas change nothing.
    """
    if path is None:
        return "built-in personas: nothing to refresh"
    path = Path(path)
    registry = engine.personas
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as e:
        return f"cannot read {path.name} ({e.strerror or e}); the current personas stay"
    if _seen.get(registry) == (path, mtime):
        return "personas unchanged"
    _seen[registry] = (path, mtime)  # a broken file is reported once, not on every run
    try:
        fresh = PersonaRegistry.from_yaml(path)
    except PersonaConfigError as e:
        log.warning("personas not reloaded: %s", e)
        return f"{path.name} has {len(e.problems)} problem(s); the current personas stay (details in the log)"
    missing = sorted({*engine.config.cast.values(), registry.default} - set(fresh.names))
    if missing:
        return f"{path.name} lacks {', '.join(missing)} (needed by the cast); the current personas stay"
    if list(fresh) == list(registry) and fresh.default == registry.default:
        return "personas unchanged"  # touched, or the first look after start-up
    before = set(registry.names)
    vars(registry).update(vars(fresh))  # in place: every holder of the registry sees the new set
    added, removed = set(fresh.names) - before, before - set(fresh.names)
    change = "".join([f"; added {', '.join(sorted(added))}" if added else "",
                      f"; removed {', '.join(sorted(removed))}" if removed else ""])
    return f"personas reloaded from {path.name} ({len(fresh)} personas{change})"
