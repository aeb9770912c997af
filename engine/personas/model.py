"""A persona: who speaks. Loaded from YAML (or Notion), validated as a whole, rendered to a prompt."""

from __future__ import annotations

import difflib
import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.models import Voice
from engine.modes import Mode

#: The placeholders a template may use, and nothing else.
PLACEHOLDERS = frozenset(
    {"name", "role", "backstory", "traits", "style", "mode", "task", "memory", "domains"}
)
PLACEHOLDER_RE = re.compile(r"\[([a-z_]+)\]")

HIGH = 0.7
LOW = 0.3

#: The colour names a persona may use (what terminals can show; `adapters/terminal/render.py`
#: maps each to its code). Spaces and dashes count as underscores: "bright blue" is bright_blue.
COLORS = frozenset({
    "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white", "gray", "grey",
    "bright_red", "bright_green", "bright_yellow", "bright_blue", "bright_magenta", "bright_cyan",
    "bright_white", "orange", "pink", "purple",
})


def color_key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


#: Unicode categories a name may not hold: controls, format (invisible), line and paragraph
#: separators, surrogates, private use and unassigned.
_UNNAMEABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})

class Traits(BaseModel):
    """OCEAN personality traits, each 0..1."""

    model_config = ConfigDict(extra="forbid")

    openness: float = Field(ge=0, le=1)
    conscientiousness: float = Field(ge=0, le=1)
    extraversion: float = Field(ge=0, le=1)
    agreeableness: float = Field(ge=0, le=1)
    neuroticism: float = Field(ge=0, le=1)


class Avatar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emoji: str = ":speech_balloon:"
    emoji_char: str = "💬"
    url: str | None = None


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # key, lower case
    display_name: str
    role: str
    backstory: str
    traits: Traits
    humor: float = Field(ge=0, le=1)
    formality: float = Field(ge=0, le=1)
    domains: list[str] = Field(default_factory=list)
    avatar: Avatar = Field(default_factory=Avatar)
    color: str = "white"
    preferred_modes: list[Mode] = Field(default_factory=list)
    model: str | None = None
    template: str

    @field_validator("color")
    @classmethod
    def _known_color(cls, value: str) -> str:
        if color_key(value) not in COLORS:
            close = difflib.get_close_matches(color_key(value), sorted(COLORS), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ValueError(f"unknown colour {value!r}; {hint}known: {', '.join(sorted(COLORS))}")
        return value

    @field_validator("name", "display_name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        # a line break (NEL, U+2028), a control or an invisible character would not survive the
        # YAML file (a NEL becomes a line break there) and could not be typed to address her
        if any(unicodedata.category(c) in _UNNAMEABLE for c in value):
            raise ValueError("must not contain line breaks, control or invisible characters")
        return value

    @property
    def voice(self) -> Voice:
        return Voice(
            name=self.name,
            display_name=self.display_name,
            emoji=self.avatar.emoji,
            emoji_char=self.avatar.emoji_char,
            avatar_url=self.avatar.url,
            color=self.color,
        )

    def unknown_placeholders(self) -> list[str]:
        return sorted(set(PLACEHOLDER_RE.findall(self.template)) - PLACEHOLDERS)


# What a high or a low value of each trait means for how she works and talks.
_TRAIT_TEXT: dict[str, tuple[str, str]] = {
    "openness": (
        "curious and imaginative; you welcome unusual ideas and new angles",
        "practical and conventional; you prefer proven approaches to novel ones",
    ),
    "conscientiousness": (
        "organised and thorough; you check details and follow through",
        "flexible and spontaneous; you favour speed over exhaustive checking",
    ),
    "extraversion": (
        "outgoing and energetic; you speak up first and rally people",
        "reserved and reflective; you think before you speak and keep it brief",
    ),
    "agreeableness": (
        "warm and cooperative; you look for common ground",
        "blunt and challenging; you question claims and do not soften disagreement",
    ),
    "neuroticism": (
        "alert to what can go wrong; you flag worries early",
        "calm and steady under pressure; you do not catastrophise",
    ),
}


def describe_traits(traits: Traits) -> str:
    """Only traits above 0.7 or below 0.3 say anything; the middle is unremarkable."""
    parts = []
    for trait, (high, low) in _TRAIT_TEXT.items():
        value = getattr(traits, trait)
        if value > HIGH:
            parts.append(f"You are {high}.")
        elif value < LOW:
            parts.append(f"You are {low}.")
    return " ".join(parts) or "You are balanced, without strong leanings."


def describe_style(humor: float, formality: float) -> str:
    if formality > HIGH:
        tone = "Write formally and precisely, in complete sentences."
    elif formality < LOW:
        tone = "Write casually and conversationally, like a colleague in chat."
    else:
        tone = "Write in a friendly, professional tone."
    if humor > HIGH:
        fun = "A light joke or playful phrase is welcome when it helps."
    elif humor < LOW:
        fun = "Keep humour out of it."
    else:
        fun = "A touch of dry humour is fine, sparingly."
    return f"{tone} {fun}"


def render_prompt(persona: Persona, *, mode: str, task: str, memory: str) -> str:
    """Fill the persona's template. Unknown placeholders never reach here: loading rejects them."""
    values = {
        "name": persona.display_name,
        "role": persona.role,
        "backstory": persona.backstory.strip(),
        "traits": describe_traits(persona.traits),
        "style": describe_style(persona.humor, persona.formality),
        "mode": mode.strip(),
        "task": task.strip(),
        "memory": memory.strip() or "(nothing yet)",
        "domains": ", ".join(persona.domains) or "general",
    }
    return PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), persona.template)
