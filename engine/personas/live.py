"""Keeping the engine's personas current from their source (Notion, or the YAML file).

Messages never wait on the source: the engine reads its `PersonaRegistry`, and `LivePersonas`
swaps a new set into that same object (`registry.replace`) when a refresh succeeds. A refresh
runs in the background once the time to live has passed; concurrent callers share one load.
Every set that loads is kept in SQLite (`persona_sets`), so that when the source fails, at
start-up included, the last good set is what the bot serves; the outage is logged once, and
its end once.

A page that does not validate is skipped by the source; the last good version of that persona
stays in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Protocol

from engine.personas.model import Persona
from engine.personas.registry import PersonaConfigError, PersonaRegistry
from engine.personas.source import PersonaSource, PersonaSourceError

log = logging.getLogger(__name__)


class PersonaSetMemory(Protocol):
    """What LivePersonas needs of the memory (`engine.memory.personas.PersonaMemory`)."""

    async def save_persona_set(self, source: str, personas: list[dict[str, Any]], loaded_at: datetime | None = None) -> None: ...

    async def last_persona_set(self, source: str) -> Any: ...


@dataclass(frozen=True)
class StartState:
    """How the personas were found at start-up, for the banner and the log."""

    origin: str  # "source" | "last good set" | "defaults"
    note: str | None  # a line for the banner when not from the source


class LivePersonas:
    def __init__(
        self,
        registry: PersonaRegistry,
        source: PersonaSource,
        memory: PersonaSetMemory,
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        required: frozenset[str] = frozenset(),
    ):
        """`required`: persona names the running bot cannot lose (the cast): a reload without one
        of them is refused like an outage, and the current set stays."""
        self.registry = registry
        self.source = source
        self.memory = memory
        self.ttl = ttl
        self.clock = clock
        self.loaded_at: float | None = None  # clock() of the last attempt that answered
        self.attempted_at: float | None = None
        self.outage: str | None = None  # the reason, while the source fails
        self._inflight: asyncio.Task[bool] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._saved: list[dict[str, Any]] | None = None  # what the memory holds for this source
        self._last_good: dict[str, Persona] = {}  # by name: for pages skipped as invalid
        self._reported: tuple[str, ...] = ()
        self.required = frozenset(required)
        self.watch_interval = 1.0  # seconds between looks at a file source's stamp
        self._stamp: object = None

    # --- start-up ---------------------------------------------------------------------------------

    async def start(self) -> StartState:
        """The first load. On failure: the last good set from SQLite, or the registry as it is
        (the defaults). A source that refuses us for good (a wrong key) raises
        `PersonaSourceError` with transient False: that is a setting to fix, not an outage."""
        stored = await self.memory.last_persona_set(self.source.name)
        kept = _from_json(stored.personas if stored else None)
        self._last_good = {p.name: p for p in kept}
        self._saved = stored.personas if stored else None
        try:
            ok = await self.refresh()
        except PersonaSourceError as e:
            if not e.transient:
                raise
            ok = False
        if ok:
            return StartState("source", None)
        where = _describe(self.source.name)
        if stored and kept:
            self.registry.replace(kept)
            when = stored.loaded_at.strftime("%Y-%m-%d %H:%M UTC")
            note = f"{self.outage}: using the last personas loaded from {where} ({when}) until it answers"
            log.warning("%s", note)
            return StartState("last good set", note)
        note = f"{self.outage}: using the default personas until it answers"
        log.warning("%s", note)
        return StartState("defaults", note)

    def run_in_background(self) -> None:
        """Refresh every `ttl` seconds until `aclose()`; failures keep the current set."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._refresh_forever(), name="personas-refresh")

    async def _refresh_forever(self) -> None:
        """Every `ttl` seconds; a source with a cheap `stamp()` (the YAML file's mtime and size) is
        also looked at every `watch_interval` seconds, and reloaded as soon as it changes, so an
        edit by another process (`orchestra personas set` while the bot runs) is in use within
        about a second."""
        stamp = getattr(self.source, "stamp", None)
        while True:
            await asyncio.sleep(self.ttl if stamp is None else min(self.ttl, self.watch_interval))
            if stamp is not None and not self.stale and stamp() == self._stamp:
                continue
            with contextlib.suppress(Exception):  # refresh logs what matters; the loop goes on
                await self.refresh()

    async def adopt(self, personas: list[Persona]) -> None:
        """A set just written to the source by this process (the admin commands): in use at once,
        kept as the last good set, without waiting for a reload. A load under way read the
        source before the write: it finishes first, so its older set cannot win."""
        if self._inflight is not None and not self._inflight.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._inflight)
        self.registry.replace(personas)
        self._last_good = {p.name: p for p in personas}
        stamp = getattr(self.source, "stamp", None)
        if stamp is not None:
            self._stamp = stamp()
        dumped = [p.model_dump(mode="json") for p in personas]
        if dumped != self._saved:
            with contextlib.suppress(Exception):  # the next refresh keeps it instead
                await self.memory.save_persona_set(self.source.name, dumped)
                self._saved = dumped

    async def aclose(self) -> None:
        for task in (self._loop_task, self._inflight):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._loop_task = None
        close = getattr(self.source, "aclose", None)
        if close is not None:
            await close()

    # --- refreshing -------------------------------------------------------------------------------

    @property
    def stale(self) -> bool:
        return self.attempted_at is None or self.clock() - self.attempted_at >= self.ttl

    def refresh_if_stale(self) -> None:
        """Never waits: starts a background refresh when the time to live has passed."""
        if self.stale and (self._inflight is None or self._inflight.done()):
            self._start_refresh()

    async def refresh(self) -> bool:
        """Load now (joining a load already under way). True: the source answered and its
        personas are in use. Only a non-transient `PersonaSourceError` is raised."""
        task = self._inflight if self._inflight is not None and not self._inflight.done() else self._start_refresh()
        return await asyncio.shield(task)

    def _start_refresh(self) -> asyncio.Task[bool]:
        self._inflight = asyncio.create_task(self._load(), name="personas-load")
        return self._inflight

    async def _load(self) -> bool:
        self.attempted_at = self.clock()
        stamp = getattr(self.source, "stamp", None)
        if stamp is not None:  # before reading: a write during the load is seen next time
            self._stamp = stamp()
        try:
            loaded = await self.source.load()
        except (PersonaSourceError, PersonaConfigError) as e:
            self._failed(str(e) if isinstance(e, PersonaSourceError) else f"{_describe(self.source.name)} does not load")
            if isinstance(e, PersonaSourceError) and not e.transient and self.loaded_at is None:
                raise  # at start-up: a setting to fix
            return False
        except Exception:  # noqa: BLE001 - whatever the source did, the bot keeps its personas
            log.debug("loading personas from %s failed", self.source.name, exc_info=True)
            self._failed(f"{_describe(self.source.name)} cannot be read (unexpected error; details in the debug log)")
            return False
        personas = self._with_last_good(loaded)
        if not personas:
            self._failed(f"{_describe(self.source.name)} holds no valid persona")
            return False
        missing = sorted(self.required - {p.name for p in personas})
        if missing and self.loaded_at is not None:  # at start-up the cast check names the setting
            self._failed(f"{_describe(self.source.name)} no longer has {', '.join(missing)}, whom the cast needs")
            return False
        self.registry.replace(personas)
        self._last_good = {p.name: p for p in personas}
        self.loaded_at = self.clock()
        if self.outage is not None:
            log.warning("%s answers again: personas reloaded (%d)", _describe(self.source.name), len(personas))
            self.outage = None
        self._report(getattr(self.source, "warnings", []) + getattr(self.source, "problems", []))
        dumped = [p.model_dump(mode="json") for p in personas]
        if dumped != self._saved:
            try:
                await self.memory.save_persona_set(self.source.name, dumped)
                self._saved = dumped
            except Exception:  # noqa: BLE001 - a memory hiccup must not lose the new set in use
                log.warning("could not keep the personas from %s in the memory", _describe(self.source.name),
                            exc_info=True)
        return True

    def _with_last_good(self, loaded: list[Persona]) -> list[Persona]:
        """A persona whose page was skipped (it does not validate) keeps its last good version."""
        skipped = getattr(self.source, "skipped", set())
        have = {p.name for p in loaded}
        kept = [p for name, p in self._last_good.items() if name in skipped and name not in have]
        return [*loaded, *kept]

    def _failed(self, reason: str) -> None:
        if self.outage is None:  # once per outage, not once per refresh or message
            log.warning("%s: serving the last good personas until it answers", reason)
        else:
            log.debug("%s still unreachable: %s", self.source.name, reason)
        self.outage = reason

    def _report(self, lines: list[str]) -> None:
        """Warnings about pages, logged when they change, not on every refresh."""
        current = tuple(lines)
        if current != self._reported:
            for line in current:
                if line not in self._reported:
                    log.warning("%s", line)
            self._reported = current


def _describe(source_name: str) -> str:
    kind = source_name.split(":", 1)[0]
    return {"notion": "Notion", "yaml": "the personas file"}.get(kind, source_name)


def _from_json(rows: list[dict[str, Any]] | None) -> list[Persona]:
    out: list[Persona] = []
    for row in rows or []:
        try:
            out.append(Persona.model_validate(row))
        except Exception:  # noqa: BLE001 - a stored set from another version: skip what no longer fits
            log.debug("stored persona no longer valid: %r", row.get("name"), exc_info=True)
    return out
