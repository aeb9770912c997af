"""Who speaks in an investigation: the configured cast per mode, the person's choice when they
name a persona, and never a critic challenging her own finding."""

from __future__ import annotations

from engine.memory.records import TurnRecord, TurnRole
from engine.modes import Mode
from engine.personas import Persona, PersonaRegistry


class Casting:
    def __init__(self, personas: PersonaRegistry, cast: dict[str, str]):
        self.personas = personas
        self.roles = cast  # mode name -> persona name, from the configuration

    def cast(self, mode: Mode) -> Persona:
        """Who the configuration says speaks this mode."""
        return self.personas.get(self.roles.get(mode.value)) or self.personas[self.personas.default]

    def speaker(self, mode: Mode, turns: list[TurnRecord], named: Persona | None) -> tuple[Persona, str]:
        """Who really speaks this turn, and why: the named persona, else the cast; never a critic
        challenging her own finding (then a stand-in does, see `_stand_in`)."""
        persona = named or self.cast(mode)
        why = "named by a person" if named else f"the cast's {mode.value}"
        if mode == Mode.CRITIC:
            authors = challenged_authors(turns)
            if persona.name in authors:
                other = self._stand_in(authors)
                if other is not None:
                    why = (f"{persona.display_name} wrote the finding under challenge, "
                           f"so {other.display_name} challenges it instead")
                    persona = other
        return persona, why

    def _stand_in(self, authors: list[str]) -> Persona | None:
        """A critic who wrote none of the findings under challenge: whoever prefers the critic mode,
        then the cast's researcher and planner, then anyone (registry order keeps it deterministic)."""
        for exclude in (authors, authors[:1]):
            candidates = [p for p in self.personas if Mode.CRITIC in p.preferred_modes]
            candidates += [self.cast(Mode.RESEARCHER), self.cast(Mode.PLANNER), *self.personas]
            for p in candidates:
                if p.name not in exclude:
                    return p
        return None

    def opening_cast(self, named: Persona | None) -> dict[str, Persona]:
        """Who speaks each mode when the investigation opens: the named lead researches first,
        and the critic is someone other than her."""
        researcher = named or self.cast(Mode.RESEARCHER)
        critic = self.cast(Mode.CRITIC)
        if critic.name == researcher.name:
            critic = self._stand_in([researcher.name]) or critic
        return {"researcher": researcher, "critic": critic, "planner": self.cast(Mode.PLANNER)}


def challenged_authors(turns: list[TurnRecord]) -> list[str]:
    """Who wrote what a critic turn now would challenge: the latest hypothesis first, and the plan
    when the latest turn is one (a person pressed Challenge after it)."""
    persona_turns = [t for t in turns if t.role == TurnRole.PERSONA and t.structured]
    authors: list[str] = []
    research = next((t for t in reversed(persona_turns) if t.mode == Mode.RESEARCHER), None)
    if research is not None:
        authors.append(research.author)
    if persona_turns and persona_turns[-1].mode == Mode.PLANNER and persona_turns[-1].author not in authors:
        authors.append(persona_turns[-1].author)
    return authors
