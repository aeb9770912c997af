"""Persona admin: create, set, archive, import and history, for the CLI and every chat platform.

One service so the rules live once: a change is validated as a whole set (names and display
names unique, the cast kept, never the last persona) before anything is written; it is written to
the active source (the YAML file, keeping its comments, or Notion); the running bot's registry is
updated at once (`LivePersonas.adopt`), and the change is recorded (who, when, what) in the
memory's `persona_changes`. Every refusal is a `PersonaEditError` whose message a person can act
on; the adapters only show it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from engine.personas.edit import (
    FIELDS,
    PersonaEditError,
    apply_changes,
    diff,
    parse_assignments,
)
from engine.personas.model import Persona
from engine.personas.registry import PersonaConfigError, PersonaRegistry
from engine.personas.source import PersonaSource, PersonaSourceError, check_persona

if TYPE_CHECKING:
    from engine.personas.live import LivePersonas

#: What a defaults-only bot says when asked to change a persona.
READ_ONLY = ("the personas in use are the shipped defaults, which are read-only: write them to a file with "
             "`orchestra personas init personas.yaml`, set ORCHESTRA_PERSONAS=personas.yaml (and restart the bot "
             "if it is running), then try again")

USAGE = """\
persona create NAME [field=value ...] [--from EXISTING]   a new persona (from a neutral template, or a copy)
persona set NAME field=value ...                         change fields, e.g. humor=0.3 role=Head of research
persona archive NAME                                     stop using a persona
persona history NAME                                     who changed what, and when
fields: """ + ", ".join(FIELDS)

#: A new persona's settings before the person's own (`create` without --from).
NEUTRAL = {
    "role": "Assistant",
    "backstory": "",
    "traits": {t: 0.5 for t in ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")},
    "humor": 0.5,
    "formality": 0.5,
    "avatar": {"emoji": ":bust_in_silhouette:", "emoji_char": "👤", "url": None},
    "color": "white",
}


class ChangeLog(Protocol):
    """What the service needs of the memory (`engine.memory.personas.PersonaMemory`)."""

    async def record_persona_change(self, persona: str, *, source: str, actor: str, action: str,
                                    changes: dict[str, Any]) -> int: ...

    async def persona_changes(self, name: str) -> list[Any]: ...


class PersonaAdmin:
    def __init__(self, source: PersonaSource, log: ChangeLog, *, live: LivePersonas | None = None,
                 cast: Mapping[str, str] | None = None):
        """`cast`: the setting behind each cast role -> the persona it names
        ({"ORCHESTRA_RESEARCHER": "sophia"}), so archiving her is refused by that name."""
        self.source = source
        self.log = log
        self.live = live
        self.cast = {setting: name.strip().lower() for setting, name in (cast or {}).items()}

    # --- the commands -----------------------------------------------------------------------------

    async def create(self, name: str, assignments: Iterable[str] | Mapping[str, Any] = (), *, actor: str,
                     template: str | None = None) -> str:
        changes = _changes(assignments)
        current = await self._writable_set()
        key = _key(name)
        if _find(current, key) is not None:
            raise PersonaEditError(f"there is already a persona called {key}: change her with `persona set {key} ...`")
        if template:
            base = _find(current, _key(template))
            if base is None:
                raise PersonaEditError(f"--from {template}: no such persona (known: {_names(current)})")
            settings = base.model_dump(mode="json")
            settings.update(name=key, display_name=key.capitalize())
        else:
            settings = {"name": key, "display_name": key.capitalize(), **NEUTRAL,
                        "template": _default_template()}
        blank, problems = check_persona(settings, key)
        if blank is None:
            raise PersonaEditError("; ".join(problems), "name")
        persona = apply_changes(blank, changes)
        self._check_set([*current, persona])
        await self._save(persona)
        await self._adopt([*current, persona])
        record = {f: list(v) for f, v in diff(blank, persona).items()}
        if template:
            record = {"from": [None, _key(template)], **record}
        await self._record(key, actor, "create", record)
        changed = ", ".join(diff(blank, persona)) or "no field changed from the " + ("copy" if template else "template")
        origin = f"a copy of {_key(template)}" if template else "the neutral template"
        return f"Created {persona.display_name} ({key}) from {origin}; set: {changed}."

    async def set(self, name: str, assignments: Iterable[str] | Mapping[str, Any], *, actor: str) -> str:
        changes = _changes(assignments)
        if not changes:
            raise PersonaEditError(f"say what to change, e.g. `persona set {_key(name) or 'sophia'} humor=0.3` "
                                   f"(fields: {', '.join(FIELDS)})")
        current = await self._writable_set()
        before = self._existing(current, name)
        after = apply_changes(before, changes)
        changed = diff(before, after)
        if not changed:
            return f"{before.display_name} already has those values; nothing changed."
        new_set = [after if p.name == before.name else p for p in current]
        self._check_set(new_set)
        await self._save(after)
        await self._adopt(new_set)
        await self._record(before.name, actor, "update", {f: list(v) for f, v in changed.items()})
        return f"Updated {after.display_name}: " + "; ".join(f"{f} {_short(o)} → {_short(n)}" for f, (o, n) in changed.items()) + "."

    async def archive(self, name: str, *, actor: str) -> str:
        current = await self._writable_set()
        persona = self._existing(current, name)
        roles = [setting for setting, cast in self.cast.items() if cast == persona.name]
        if roles:
            raise PersonaEditError(
                f"{persona.name} is in the cast ({', '.join(f'{r}={persona.name}' for r in roles)}): set "
                f"{' and '.join(roles)} to another persona (and restart the bot), then archive her")
        rest = [p for p in current if p.name != persona.name]
        if not rest:
            raise PersonaEditError(f"{persona.name} is the last persona: create another one before archiving her")
        try:
            await self.source.archive(persona.name)
        except PersonaSourceError as e:
            raise PersonaEditError(f"not archived: {e}") from None
        await self._adopt(rest)
        await self._record(persona.name, actor, "archive", {})
        return f"Archived {persona.display_name} ({persona.name}); personas now: {_names(rest)}."

    async def import_personas(self, incoming: list[Persona], *, actor: str) -> str:
        """Every persona of an export into the active source, by name (new or updated); the
        others stay. One "import" change is recorded per persona written."""
        current = await self._writable_set(allow_missing=True)
        by_name = {p.name: p for p in current}
        added, updated, same, writes = [], [], [], []
        for persona in incoming:
            old = by_name.get(persona.name)
            changed = diff(old, persona) if old is not None else None
            if old is None:
                added.append(persona.name)
            elif changed:
                updated.append(f"{persona.name} ({', '.join(changed)})")
            else:
                same.append(persona.name)
                continue
            writes.append((persona, changed))
            by_name[persona.name] = persona
        self._check_set(list(by_name.values()))
        for persona, changed in writes:
            await self._save(persona)
            await self._record(persona.name, actor, "import",
                               {f: list(v) for f, v in changed.items()} if changed else {})
        await self._adopt(list(by_name.values()))
        parts = [f"{label}: {', '.join(names)}" for label, names in
                 (("new", added), ("updated", updated), ("unchanged", same)) if names]
        return f"Imported {len(incoming)} persona(s) into {_where(self.source.name)}; " + "; ".join(parts) + "."

    async def history(self, name: str) -> str:
        key = _key(name)
        changes = await self.log.persona_changes(key)
        if not changes:
            return f"No recorded changes for {key}."
        lines = [f"Changes to {key} (oldest first):"]
        for c in changes:
            what = "; ".join(f"{f} {_short(old)} → {_short(new)}" for f, (old, new) in c.changes.items())
            lines.append(f"{c.at:%Y-%m-%d %H:%M} UTC  {c.action} by {c.actor}" + (f": {what}" if what else ""))
        return "\n".join(lines)

    # --- a chat command's text ----------------------------------------------------------------------

    async def run(self, text: str, *, actor: str) -> str:
        """`set sophia humor=0.3 role=Head of research`, as typed after /persona. A value runs
        to the next `field=`, so it needs no quotes; unknown words get the usage."""
        template = None
        found = _FROM.search(text)
        if found:  # anywhere: before or after the assignments
            template = found.group(1)
            text = text[:found.start()] + " " + text[found.end():]
            if not template:
                raise PersonaEditError("--from needs a persona's name, e.g. --from sophia")
        words, assignments = split_command(text)
        action = words[0].lower() if words else ""
        if action in ("", "help"):
            return USAGE
        if len(words) != 2 or action not in ("create", "set", "archive", "history"):
            raise PersonaEditError("I did not understand that. Usage:\n" + USAGE)
        name = words[1]
        if action == "create":
            return await self.create(name, assignments, actor=actor, template=template)
        if template is not None:
            raise PersonaEditError("--from goes with create")
        if action == "set":
            return await self.set(name, assignments, actor=actor)
        if assignments:
            raise PersonaEditError(f"{action} takes only a name, e.g. `persona {action} {name}`")
        if action == "archive":
            return await self.archive(name, actor=actor)
        return await self.history(name)

    # --- helpers ----------------------------------------------------------------------------------

    async def current(self) -> list[Persona]:
        """The personas the active source holds now (fresh, not the bot's cached set)."""
        try:
            return await self.source.load()
        except PersonaConfigError as e:
            raise PersonaEditError(f"{e}: fix the file first; nothing was changed") from None
        except PersonaSourceError as e:
            raise PersonaEditError(f"{e}; nothing was changed") from None

    async def _writable_set(self, *, allow_missing: bool = False) -> list[Persona]:
        if not self.source.writable:
            raise PersonaEditError(READ_ONLY)
        if allow_missing and getattr(self.source, "missing", False):
            return []  # a new persona file, written by this import
        return await self.current()

    def _existing(self, current: list[Persona], name: str) -> Persona:
        persona = _find(current, _key(name))
        if persona is None:
            raise PersonaEditError(f"there is no persona called {_key(name) or name!r} (known: {_names(current)})")
        return persona

    def _check_set(self, personas: list[Persona]) -> None:
        """The set as it will load: no two personas sharing a name or a display name."""
        try:
            PersonaRegistry.from_mapping([p.model_dump(mode="json") for p in personas], _where(self.source.name))
        except PersonaConfigError as e:
            raise PersonaEditError("; ".join(e.problems) + "; nothing was changed") from None

    async def _save(self, persona: Persona) -> None:
        try:
            await self.source.save(persona)
        except PersonaSourceError as e:
            raise PersonaEditError(f"not saved: {e}") from None

    async def _adopt(self, personas: list[Persona]) -> None:
        if self.live is not None:
            await self.live.adopt(personas)

    async def _record(self, name: str, actor: str, action: str, changes: dict[str, Any]) -> None:
        await self.log.record_persona_change(name, source=self.source.name, actor=actor, action=action,
                                             changes=changes)


_FROM = re.compile(r"(?:^|\s)--from(?:\s+|=)?(\S*)")
_ASSIGNMENT = re.compile(r"(?:^|\s)(?=[A-Za-z_][\w.]*=)")


def split_command(text: str) -> tuple[list[str], list[str]]:
    """("set sophia", "role=Head of research humor=0.3") -> (["set", "sophia"], ["role=Head of
    research", "humor=0.3"]): words before the first `field=`, then one item per assignment.
    Quotes around a value (straight or curly, as chat apps write them) are taken off."""
    text = text.strip()
    match = _ASSIGNMENT.search(text)
    head, tail = (text[:match.start()], text[match.start():]) if match else (text, "")
    items = []
    for part in _ASSIGNMENT.split(tail):
        part = part.strip()
        if not part:
            continue
        field, _, value = part.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] in "\"'“‘" and value[-1] in "\"'”’":
            value = value[1:-1]
        items.append(f"{field}={value}")
    return head.split(), items


def _changes(assignments: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
    return dict(assignments) if isinstance(assignments, Mapping) else parse_assignments(list(assignments))


def _key(name: str | None) -> str:
    return (name or "").strip().lstrip("@").strip().lower()


def _find(personas: list[Persona], key: str) -> Persona | None:
    return next((p for p in personas if p.name == key or p.display_name.lower() == key), None)


def _names(personas: list[Persona]) -> str:
    return ", ".join(p.name for p in personas) or "none"


def _short(value: Any) -> str:
    text = "-" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    text = " ".join(text.split())
    return repr(text[:60] + "…") if len(text) > 60 else repr(text) if " " in text or not text else text


def _where(source_name: str) -> str:
    kind, _, rest = source_name.partition(":")
    return {"yaml": rest, "notion": "the Notion database"}.get(kind, source_name)


def _default_template() -> str:
    return PersonaRegistry.defaults()[PersonaRegistry.defaults().default].template
