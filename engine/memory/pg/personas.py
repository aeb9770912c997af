"""PostgreSQL: the part of the memory that `engine.memory.personas` is for SQLite (PersonaMemory):
the last good persona set of each source, and the history of persona changes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from engine.memory.personas import ACTIONS, PersonaChange, PersonaSet
from engine.memory.pg.connection import PgConnection
from engine.memory.schema import _dt, _ts
from engine.models import utcnow


def _text(value: str) -> str:
    """PostgreSQL's text cannot hold NUL: U+FFFD in its place (JSON escapes its own)."""
    return value.replace("\x00", "\ufffd")


class PgPersonaMemory(PgConnection):
    async def save_persona_set(self, source: str, personas: list[dict[str, Any]], loaded_at: datetime | None = None) -> None:
        """Keep `personas` as the last good set of `source` (one row per source, replaced)."""
        await self._write(
            "INSERT INTO persona_sets (source, personas_json, loaded_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (source) DO UPDATE SET personas_json = excluded.personas_json, loaded_at = excluded.loaded_at",
            source, json.dumps(personas, ensure_ascii=False, sort_keys=True), _ts(loaded_at or utcnow()),
        )

    async def last_persona_set(self, source: str) -> PersonaSet | None:
        rows = await self._rows("SELECT personas_json, loaded_at FROM persona_sets WHERE source = $1", source)
        if not rows:
            return None
        return PersonaSet(source, json.loads(rows[0][0]), _dt(rows[0][1]))

    async def record_persona_change(
        self, persona: str, *, source: str, actor: str, action: str, changes: dict[str, Any], at: datetime | None = None
    ) -> int:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        rows = await self._write(
            "INSERT INTO persona_changes (persona, source, actor, at, action, changes_json) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            _text(persona), _text(source), _text(actor), _ts(at or utcnow()), action,
            json.dumps(changes, ensure_ascii=False, default=str),
        )
        return int(rows[0][0])

    async def persona_changes(self, name: str) -> list[PersonaChange]:
        """Every recorded change of persona `name`, oldest first."""
        rows = await self._rows(
            "SELECT id, persona, source, actor, at, action, changes_json FROM persona_changes "
            "WHERE persona = $1 ORDER BY id", name.strip().lower(),
        )
        return [PersonaChange(r[0], r[1], r[2], r[3], _dt(r[4]), r[5], json.loads(r[6])) for r in rows]
