"""Where personas live: the port, and the sources that need no network (a YAML file, the defaults).

A source loads the whole set, and, when `writable`, saves one persona (create or update, by name)
or archives one. The Notion source is in `adapters.notion.personas`; `engine.personas.live`
keeps the engine's registry current from whichever source is active.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from engine.personas.model import Persona
from engine.personas.registry import PersonaConfigError, PersonaRegistry, _entries


class PersonaSourceError(RuntimeError):
    """The source cannot be read or written now. The message is safe to show (no secret, no
    internal host); `transient` says whether trying again later may help (an outage, a rate
    limit) or a person must fix something first (a refused key, a database not shared)."""

    def __init__(self, message: str, *, transient: bool = True):
        super().__init__(message)
        self.transient = transient


@runtime_checkable
class PersonaSource(Protocol):
    name: str  # "yaml:/path/personas.yaml", "notion:<data source id>", "defaults"
    writable: bool

    async def load(self) -> list[Persona]:
        """Every persona, validated. Raises `PersonaSourceError` when the source is unreachable."""
        ...

    async def save(self, persona: Persona) -> None:
        """Create or update `persona` (by its name)."""
        ...

    async def archive(self, name: str) -> None: ...


def check_persona(settings: dict[str, Any], label: str) -> tuple[Persona | None, list[str]]:
    """One persona's settings (with `name`) validated by the same rules as the YAML file: the
    persona, or None and every problem, each starting with `label`."""
    problems: list[str] = []
    persona = _entries([settings], problems)
    name = str(settings.get("name") or "entry 1")
    problems = [f"{label}: {p[len(name) + 1:].lstrip()}" if p.startswith(name) else f"{label}: {p}" for p in problems]
    return (persona[0] if persona and not problems else None), problems


def persona_settings(persona: Persona) -> dict[str, Any]:
    """A persona as the YAML file holds it (without the name, which is the key)."""
    return persona.model_dump(mode="json", exclude={"name"})


class DefaultPersonas:
    """The personas shipped with Orchestra: read-only."""

    name = "defaults"
    writable = False

    async def load(self) -> list[Persona]:
        return list(PersonaRegistry.defaults())

    async def save(self, persona: Persona) -> None:
        raise PersonaSourceError(
            "the shipped default personas are read-only: set ORCHESTRA_PERSONAS to a YAML file "
            "(a copy of the defaults), or NOTION_API_KEY and NOTION_PERSONAS_DB_ID, to edit personas",
            transient=False,
        )

    async def archive(self, name: str) -> None:
        await self.save(None)  # type: ignore[arg-type]


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments, key order, quoting and block styles stay
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=2, sequence=2, offset=0)
    # null as the shipped file writes it (ruamel's default is an empty value)
    yaml.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def _scalar(value: Any) -> Any:
    """A value as the shipped file writes it: multi-line text as a block, short lists inline."""
    from ruamel.yaml.comments import CommentedSeq
    from ruamel.yaml.scalarstring import LiteralScalarString

    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    if isinstance(value, list):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        return seq
    return value


def _merge(target: Any, new: dict[str, Any], lean: dict[str, Any]) -> None:
    """Write `new` into the ruamel mapping `target`, touching only what changed, so comments
    and order stay. A key the file does not have is added only when it differs from the
    default (`lean`)."""
    from ruamel.yaml.comments import CommentedMap

    for key, value in new.items():
        if key in target:
            if target[key] == value:
                continue
            if isinstance(value, dict) and hasattr(target[key], "items"):
                _merge(target[key], value, lean.get(key) or {})
            else:
                target[key] = _scalar(value)
        elif key in lean:
            if isinstance(value, dict):
                target[key] = CommentedMap()
                _merge(target[key], value, lean[key])
            else:
                target[key] = _scalar(value)


class YamlPersonaSource:
    """A personas YAML file (ORCHESTRA_PERSONAS): read by `PersonaRegistry.from_yaml`'s rules,
    written back with ruamel.yaml so a person's comments and order survive an edit."""

    writable = True

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"yaml:{self.path}"

    @property
    def missing(self) -> bool:
        """No file yet: `save` starts one (an import into a new ORCHESTRA_PERSONAS file)."""
        return not self.path.exists()

    def stamp(self) -> tuple[int, int] | None:
        """The file's mtime and size: `LivePersonas` reloads when it changes (an edit by hand or
        by `orchestra personas set` in another process)."""
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    async def load(self) -> list[Persona]:
        return list(PersonaRegistry.from_yaml(self.path))  # PersonaConfigError: the file's problems

    async def save(self, persona: Persona) -> None:
        await asyncio.to_thread(self._save, persona)

    async def archive(self, name: str) -> None:
        await asyncio.to_thread(self._archive, name.strip().lower())

    # --- in a thread: file I/O --------------------------------------------------------------------

    def _read(self) -> Any:
        if self.missing:
            from ruamel.yaml.comments import CommentedMap

            doc = CommentedMap()
            doc.yaml_set_start_comment("Personas. `orchestra personas show NAME` shows one; "
                                       "`orchestra personas set NAME field=value` changes one.")
            return doc
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as e:
            raise PersonaSourceError(f"cannot read {self.path}: {e.strerror or e}", transient=False) from None
        return _yaml().load(text)

    def _write(self, doc: Any) -> None:
        """Checked, then atomically: what is written must load again (a file the bot cannot read
        is never left behind), and a crash mid-write leaves the old file, never half a file."""
        import io

        from engine.personas.registry import load_yaml

        buffer = io.StringIO()
        _yaml().dump(doc, buffer)
        text = buffer.getvalue()
        problems: list[str] = []
        data = load_yaml(text, problems)
        try:
            if not problems:
                PersonaRegistry.from_mapping(data, str(self.path))
        except PersonaConfigError as e:
            problems = e.problems
        if problems:
            raise PersonaSourceError(f"not saved: {self.path} would not load after the change: "
                                     + "; ".join(problems), transient=False)
        target = self.path.resolve()  # a symlinked file is written where it points; the link stays
        try:
            mode = target.stat().st_mode & 0o777  # the file keeps its permissions
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        fd, tmp = tempfile.mkstemp(prefix=".personas-", suffix=".yaml", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise PersonaSourceError(f"cannot write {self.path}: {e.strerror or e}", transient=False) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _entry(self, doc: Any, name: str) -> tuple[Any, Any]:
        """(container, key) of persona `name` in the mapping or list form; key None: not there."""
        if hasattr(doc, "items"):
            for key in doc:
                if str(key).strip().lower() == name:
                    return doc, key
            return doc, None
        for i, item in enumerate(doc or []):
            if hasattr(item, "get") and str(item.get("name", "")).strip().lower() == name:
                return doc, i
        return doc, None

    def _save(self, persona: Persona) -> None:
        doc = self._read()
        new = persona_settings(persona)
        lean = persona.model_dump(mode="json", exclude={"name"}, exclude_defaults=True)
        for key in ("display_name", "role", "backstory", "traits", "humor", "formality", "template"):
            lean[key] = new[key]  # required: always written
        container, key = self._entry(doc, persona.name)
        if key is None:
            from ruamel.yaml.comments import CommentedMap

            entry = CommentedMap()
            _merge(entry, new, lean)
            if hasattr(container, "items"):
                container[persona.name] = entry
            else:
                entry.insert(0, "name", persona.name)
                container.append(entry)
        else:
            _merge(container[key], new, lean)
        self._write(doc)

    def _archive(self, name: str) -> None:
        doc = self._read()
        container, key = self._entry(doc, name)
        if key is None:
            raise PersonaSourceError(f"{self.path} has no persona called {name!r}", transient=False)
        del container[key]
        self._write(doc)
