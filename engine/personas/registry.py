"""The set of personas the bot knows: loading, validation, lookup, addressing and domain routing."""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.personas.model import PLACEHOLDER_RE, PLACEHOLDERS, Persona
from engine.text import visible

DEFAULT_PERSONA = "cherry"


class PersonaConfigError(ValueError):
    """Every problem found while loading personas, reported at once."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) with the personas:\n{lines}")


@functools.lru_cache(maxsize=4096)
def _domain_word(domain: str) -> re.Pattern[str]:
    """A domain word as a word prefix, compiled once: routing runs for every message, and building
    and looking up each persona's patterns anew was most of what routing cost."""
    return re.compile(rf"\b{re.escape(domain.lower())}")


@dataclass(frozen=True)
class DomainRoute:
    """Why a persona was chosen when nobody was named."""

    persona: str
    matched: tuple[str, ...]
    reason: str


class _CheckedLoader(yaml.SafeLoader):
    """safe_load that notes a key given twice in one mapping (PyYAML keeps the last silently)."""

    duplicates: list[str]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                self.duplicates.append(
                    f"line {key_node.start_mark.line + 1}: {key!r} is given twice in the same place; "
                    "the later one would silently replace the first"
                )
            elif isinstance(key, (str, int, float, bool)):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, problems: list[str]) -> Any:
    """Parse YAML, adding any problem (bad syntax with its line, duplicate keys) to `problems`."""
    loader = _CheckedLoader(text)
    loader.duplicates = []
    try:
        node = loader.get_single_node()
        if isinstance(node, yaml.MappingNode):  # every entry, a repeated name too: all get checked
            data: Any = Entries(
                (loader.construct_object(k, deep=True), loader.construct_object(v, deep=True), k.start_mark.line + 1)
                for k, v in node.value
            )
        else:
            data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(e, "problem", None) or "the file is not valid YAML"
        problems.append(f"not valid YAML at {where}{what}")
        return None
    finally:
        loader.dispose()
    problems.extend(loader.duplicates)
    return data


class Entries(list):
    """The top level of a persona file: (name, settings, line) in file order, repeats included."""


def _empty(data: Any, problems: list[str]) -> bool:
    if isinstance(data, (dict, list)) and data:
        return False
    problems.append("expected a mapping of persona name to settings (name: {display_name: ..., role: ...})")
    return True


def _entries(data: Any, problems: list[str]) -> list[Persona | None]:
    """Each entry validated on its own; problems are added, never raised."""
    if isinstance(data, Entries):
        items = [(i, key, raw, line) for i, (key, raw, line) in enumerate(data, 1)]
    elif isinstance(data, dict):
        items = [(i, key, raw, None) for i, (key, raw) in enumerate(data.items(), 1)]
    else:
        items = [(i, raw.get("name") if isinstance(raw, dict) else None, raw, None) for i, raw in enumerate(data, 1)]
    seen: dict[str, str] = {}
    labels: set[str] = set()
    out: list[Persona | None] = []
    for index, key, raw, line in items:
        name = "" if key is None else str(key).strip().lower()
        label = name or f"entry {index}"
        if label in labels:  # the same name again: tell the two apart
            label = f"{label} (line {line})" if line else f"{label} (entry {index})"
        labels.add(label)
        if not name:
            problems.append(f"{label}: the persona has no name")
        if not isinstance(raw, dict):
            problems.append(f"{label}: expected a mapping of settings, got {type(raw).__name__}")
            continue
        display = raw.get("display_name")
        for alias in dict.fromkeys(a for a in (name, str(display or "").strip().lower()) if a):
            if alias in seen and seen[alias] != label:
                problems.append(f"{label}: the name {alias!r} is already used by {seen[alias]}")
            seen.setdefault(alias, label)
        template = raw.get("template")
        if isinstance(template, str):
            for unknown in sorted(set(PLACEHOLDER_RE.findall(template)) - PLACEHOLDERS):
                problems.append(f"{label}.template: unknown placeholder [{unknown}] (known: "
                                + ", ".join(f"[{p}]" for p in sorted(PLACEHOLDERS)) + ")")
        settings = {k: v for k, v in raw.items() if k != "name"}
        try:
            out.append(Persona.model_validate({"name": name or f"entry-{index}", **settings}))
        except ValidationError as e:
            problems.extend(f"{label}.{_problem(err)}" for err in e.errors())
            out.append(None)
    return out


def _problem(err: Any) -> str:
    """One pydantic error as a person reads it: the setting, what is wrong, what is allowed."""
    where = ".".join(str(p) for p in err["loc"])
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return f"{where}: missing (required)"
    if kind == "extra_forbidden":
        known = sorted(Persona.model_fields) if len(err["loc"]) == 1 else []
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        return f"{where}: unknown setting" + (f"; did you mean {close[0]}?" if close else "")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{where}: {value!r} is out of range; it must be between 0 and 1"
    if kind == "value_error":
        return f"{where}: {str(err['msg']).removeprefix('Value error, ')}"
    return f"{where}: {err['msg']}" + (f" (got {value!r})" if not isinstance(value, (dict, list)) else "")


class PersonaRegistry:
    def __init__(self, personas: list[Persona], default: str = DEFAULT_PERSONA):
        self._wanted_default = default
        self._set(personas)

    def _set(self, personas: list[Persona]) -> None:
        if not personas:
            raise ValueError("a persona registry needs at least one persona")
        by_name = {p.name: p for p in personas}
        default = self._wanted_default if self._wanted_default in by_name else next(iter(by_name))
        address_re = self._compile_address_re(by_name.values())
        # three assignments, no await between them: every reader sees the old set or the new one
        self._by_name, self.default, self._address_re = by_name, default, address_re

    def replace(self, personas: list[Persona]) -> None:
        """Swap in a new set of personas, in place: the engine and every flow hold this object,
        so a persona edited in Notion (or by an admin) is used from the next message on."""
        self._set(list(personas))

    # --- loading ------------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Any, source: str = "personas") -> "PersonaRegistry":
        """Validate every entry and collect all problems before failing.

        `data` maps each persona's name to her settings (the shipped file's form), or is a list
        of settings that each carry a `name`. Every problem names the persona (or, without a
        name, the entry's position) and the setting, so one run shows everything to fix.
        """
        problems: list[str] = []
        personas = [p for p in _entries(data, problems) if p is not None] if not _empty(data, problems) else []
        if problems:
            raise PersonaConfigError(source, problems)
        return cls(personas)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "PersonaRegistry":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise PersonaConfigError(str(path), [f"cannot read the file: {e.strerror or e}"]) from None
        except UnicodeDecodeError:
            raise PersonaConfigError(str(path), ["cannot read the file: it is not UTF-8 text"]) from None
        problems: list[str] = []
        data = load_yaml(text, problems)
        if problems and data is None:
            raise PersonaConfigError(str(path), problems)
        try:
            registry = cls.from_mapping(data, str(path))
        except PersonaConfigError as e:
            raise PersonaConfigError(str(path), problems + e.problems) from None
        if problems:
            raise PersonaConfigError(str(path), problems)
        return registry

    @classmethod
    def defaults(cls) -> "PersonaRegistry":
        text = resources.files("engine.personas").joinpath("defaults.yaml").read_text("utf-8")
        problems: list[str] = []
        data = load_yaml(text, problems)
        if problems:
            raise PersonaConfigError("engine/personas/defaults.yaml", problems)
        return cls.from_mapping(data, "engine/personas/defaults.yaml")

    # --- lookup -------------------------------------------------------------------------------

    def __iter__(self):
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str | None) -> Persona | None:
        key = visible(name).strip().lower()  # "so\u200bphia" is still Sophia
        if not key:
            return None
        if key in self._by_name:
            return self._by_name[key]
        for p in self._by_name.values():
            if p.display_name.lower() == key:
                return p
        return None

    def __getitem__(self, name: str) -> Persona:
        persona = self.get(name)
        if persona is None:
            raise KeyError(name)
        return persona

    # --- addressing ---------------------------------------------------------------------------

    @staticmethod
    def _compile_address_re(personas) -> re.Pattern[str]:
        personas = list(personas)
        labels = sorted({p.name for p in personas} | {p.display_name.lower() for p in personas}, key=len)
        alternatives = "|".join(re.escape(label) for label in reversed(labels))
        # "sophia, why…", "@karen: …", "Cherry — …", "sophia" alone
        return re.compile(rf"^\s*@?({alternatives})\b[\s,:;.!?\-–—]*", re.IGNORECASE)

    def split_addressee(self, text: str) -> tuple[Persona | None, str]:
        """A persona named at the start of the text, and the rest of the text.

        Read through `visible()`: invisible characters (`@so\u200bphia`) never hide a name, and
        the rest comes back without them (empty when nothing readable is left).
        """
        text = visible(text).strip()
        m = self._address_re.match(text)
        if not m:
            return None, text
        return self.get(m.group(1)), text[m.end() :].strip()

    def unknown_addressee(self, text: str) -> str | None:
        """A leading '@word' that is not a persona: someone asked for a persona we do not have.

        Only the '@' form counts: "So, why…" must not read as a persona called "So".
        """
        m = re.match(r"^\s*@([\w-]{2,32})\b", visible(text))
        if not m or self.get(m.group(1)):
            return None
        return m.group(1)

    # --- domain routing -----------------------------------------------------------------------

    def route_by_domain(self, text: str) -> DomainRoute:
        """Sales, marketing, project → Karen; research, data, content → Sophia; else Cherry.

        Each persona scores one point per distinct domain word found in the text (matched as a
        word prefix: "projects" counts for "project"). The highest score wins; a tie or no match
        goes to the default persona, so the same text always gets the same persona.
        """
        lowered = (text or "").lower()
        scores: dict[str, tuple[str, ...]] = {}
        for p in self:
            hits = tuple(d for d in p.domains if _domain_word(d).search(lowered))
            if hits:
                scores[p.name] = hits
        if not scores:
            return DomainRoute(self.default, (), "no domain words; the default persona leads")
        best = max(len(h) for h in scores.values())
        winners = [n for n, h in scores.items() if len(h) == best]
        if len(winners) > 1:
            return DomainRoute(
                self.default,
                tuple(w for n in winners for w in scores[n]),
                f"domain words tie between {', '.join(winners)}; the default persona leads",
            )
        name = winners[0]
        return DomainRoute(name, scores[name], f"domain words: {', '.join(scores[name])}")
