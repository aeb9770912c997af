"""The set of personas the bot knows: loading, validation, lookup, addressing and domain routing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.personas.model import Persona
from engine.text import visible

DEFAULT_PERSONA = "cherry"


class PersonaConfigError(ValueError):
    """Every problem found while loading personas, reported at once."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) with the personas:\n{lines}")


@dataclass(frozen=True)
class DomainRoute:
    """Why a persona was chosen when nobody was named."""

    persona: str
    matched: tuple[str, ...]
    reason: str


class PersonaRegistry:
    def __init__(self, personas: list[Persona], default: str = DEFAULT_PERSONA):
        self._by_name = {p.name: p for p in personas}
        self.default = default if default in self._by_name else next(iter(self._by_name))
        self._address_re = self._compile_address_re()

    # --- loading ------------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Any, source: str = "personas") -> "PersonaRegistry":
        """Validate every entry and collect all problems before failing."""
        if not isinstance(data, dict) or not data:
            raise PersonaConfigError(source, ["expected a mapping of persona name to settings"])
        problems: list[str] = []
        personas: list[Persona] = []
        seen: dict[str, str] = {}
        for key, raw in data.items():
            name = str(key).strip().lower()
            if not isinstance(raw, dict):
                problems.append(f"{key}: expected a mapping of settings")
                continue
            for label in {name, str(raw.get("display_name", name)).strip().lower()}:
                if label in seen:
                    problems.append(f"{key}: name {label!r} is already used by {seen[label]}")
                seen.setdefault(label, str(key))
            try:
                persona = Persona.model_validate({"name": name, **raw})
            except ValidationError as e:
                for err in e.errors():
                    where = ".".join(str(p) for p in err["loc"])
                    problems.append(f"{key}.{where}: {err['msg']}")
                continue
            for unknown in persona.unknown_placeholders():
                problems.append(f"{key}.template: unknown placeholder [{unknown}]")
            personas.append(persona)
        if problems:
            raise PersonaConfigError(source, problems)
        return cls(personas)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "PersonaRegistry":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise PersonaConfigError(str(path), [f"cannot read: {e}"]) from None
        return cls.from_mapping(data, str(path))

    @classmethod
    def defaults(cls) -> "PersonaRegistry":
        text = resources.files("engine.personas").joinpath("defaults.yaml").read_text("utf-8")
        return cls.from_mapping(yaml.safe_load(text), "engine/personas/defaults.yaml")

    # --- lookup -------------------------------------------------------------------------------

    def __iter__(self):
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str | None) -> Persona | None:
        if not name:
            return None
        key = name.strip().lower()
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

    def _compile_address_re(self) -> re.Pattern[str]:
        labels = sorted({p.name for p in self} | {p.display_name.lower() for p in self}, key=len)
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
            hits = tuple(d for d in p.domains if re.search(rf"\b{re.escape(d.lower())}", lowered))
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
