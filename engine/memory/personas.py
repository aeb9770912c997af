"""Persona memory: the last good set of each persona source, and the history of persona changes.

The last good set is what a bot serves when its source (Notion) cannot be reached, also across a
restart; the history is what `orchestra personas history NAME` shows (written by the admin
commands).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.memory.connection import MemoryConnection
from engine.memory.schema import _dt, _ts
from engine.models import utcnow

ACTIONS = ("create", "update", "archive", "import")


@dataclass(frozen=True)
class PersonaSet:
    """The personas (as JSON-ready dicts) a source last gave whole, and when."""

    source: str
    personas: list[dict[str, Any]]
    loaded_at: datetime


@dataclass(frozen=True)
class PersonaChange:
    id: int
    persona: str
    source: str
    actor: str
    at: datetime
    action: str
    changes: dict[str, Any]  # field -> [old, new]


class PersonaMemory(MemoryConnection):
    async def save_persona_set(self, source: str, personas: list[dict[str, Any]], loaded_at: datetime | None = None) -> None:
        """Keep `personas` as the last good set of `source` (one row per source, replaced)."""
        await self._write(
            "INSERT INTO persona_sets (source, personas_json, loaded_at) VALUES (?, ?, ?) "
            "ON CONFLICT (source) DO UPDATE SET personas_json = excluded.personas_json, loaded_at = excluded.loaded_at",
            (source, json.dumps(personas, ensure_ascii=False, sort_keys=True), _ts(loaded_at or utcnow())),
        )

    async def last_persona_set(self, source: str) -> PersonaSet | None:
        rows = await self._rows("SELECT personas_json, loaded_at FROM persona_sets WHERE source = ?", (source,))
        if not rows:
            return None
        return PersonaSet(source, json.loads(rows[0][0]), _dt(rows[0][1]))

    async def record_persona_change(
        self, persona: str, *, source: str, actor: str, action: str, changes: dict[str, Any], at: datetime | None = None
    ) -> int:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        rows = await self._write(
            "INSERT INTO persona_changes (persona, source, actor, at, action, changes_json) VALUES (?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            (persona, source, actor, _ts(at or utcnow()), action, json.dumps(changes, ensure_ascii=False, default=str)),
        )
        return int(rows[0][0])

    async def persona_changes(self, name: str) -> list[PersonaChange]:
        """Every recorded change of persona `name`, oldest first."""
        rows = await self._rows(
            "SELECT id, persona, source, actor, at, action, changes_json FROM persona_changes "
            "WHERE persona = ? ORDER BY id", (name.strip().lower(),),
        )
        return [PersonaChange(r[0], r[1], r[2], r[3], _dt(r[4]), r[5], json.loads(r[6])) for r in rows]
