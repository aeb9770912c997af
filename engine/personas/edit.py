"""Changing a persona one field at a time: `role=Analyst traits.openness=0.8 domains=a,b`.

The admin commands (CLI and chat) read what a person typed with `parse_assignments`, make the
new persona with `apply_changes` (validated as a whole, so nothing invalid is ever written),
and record `diff(before, after)`. Every mistake is a `PersonaEditError` whose message names
the field and what it accepts, because the person fixing it sees only that line.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from engine.modes import Mode
from engine.personas.model import COLORS, PLACEHOLDER_RE, PLACEHOLDERS, Persona, Traits, color_key

TRAITS: tuple[str, ...] = tuple(Traits.model_fields)
_NONE_WORDS = frozenset({"", "none", "null", "-"})

#: Every field a person may set, as written on the command line, and the kind of value it takes.
FIELDS: dict[str, str] = {
    "display_name": "text",
    "role": "text",
    "backstory": "text",
    **{f"traits.{t}": "fraction" for t in TRAITS},
    "humor": "fraction",
    "formality": "fraction",
    "domains": "list",
    "avatar.emoji": "text",
    "avatar.emoji_char": "text",
    "avatar.url": "optional",
    "color": "color",
    "preferred_modes": "modes",
    "model": "optional",
    "template": "text",
}


class PersonaEditError(ValueError):
    """A change that cannot be made; `field` is the field it concerns (None: the input's shape)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# --- reading what a person typed -------------------------------------------------------------------


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """`["role=Analyst", "traits.openness=0.8", "domains=a,b"]` -> typed values by field.

    Each value is checked on its own here (a number 0..1, a known colour or mode); the persona
    as a whole is checked by `apply_changes`. A field given twice is a mistake, not "last wins".
    """
    changes: dict[str, Any] = {}
    for item in items:
        field, sep, raw = item.partition("=")
        field = field.strip()
        if not sep or not field:
            raise PersonaEditError(
                f"{item!r}: write field=value, e.g. role=Analyst or traits.openness=0.8 "
                f"(fields: {', '.join(FIELDS)})"
            )
        field = _known_field(field)
        if field in changes:
            raise PersonaEditError(f"{field}: given twice; give each field once", field)
        changes[field] = coerce(field, raw)
    return changes


#: Other spellings people use (the issue and Notion say "Colour").
ALIASES = {"colour": "color", "modes": "preferred_modes"}


def _known_field(field: str) -> str:
    key = field.strip().lower()
    key = ALIASES.get(key, key)
    if key in FIELDS:
        return key
    if key == "name":
        raise PersonaEditError(
            "name: a persona's name is her key and cannot be changed; "
            "create a persona with the new name and archive this one (display_name can change)", "name")
    if key in TRAITS:  # "openness=0.8": obviously meant the trait
        raise PersonaEditError(f"{field}: unknown field; did you mean traits.{key}?", field)
    if key in ("traits", "avatar"):
        parts = ", ".join(f for f in FIELDS if f.startswith(key + "."))
        raise PersonaEditError(f"{field}: set its parts one by one: {parts}", field)
    close = difflib.get_close_matches(key, list(FIELDS), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    raise PersonaEditError(f"{field}: unknown field; {hint}fields: {', '.join(FIELDS)}", field)


def coerce(field: str, value: Any) -> Any:
    """One field's value from text (or an already typed value), checked for what the field allows."""
    kind = FIELDS[field]
    if kind == "fraction":
        return _fraction(field, value)
    if kind == "list":
        return _items(value)
    if kind == "modes":
        return _modes(field, value)
    if kind == "color":
        return _color(field, value)
    if kind == "optional":
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
            return None
        return str(value).strip()
    if not isinstance(value, str):
        raise PersonaEditError(f"{field}: expected text, got {value!r}", field)
    return value.strip() if field in _ONE_LINE else value  # a name's stray space is never meant


_ONE_LINE = frozenset({"display_name", "role", "avatar.emoji", "avatar.emoji_char"})


def _fraction(field: str, value: Any) -> float:
    allowed = "a number from 0 to 1, e.g. 0.8"
    if isinstance(value, bool):
        raise PersonaEditError(f"{field}: {value!r} is not {allowed}", field)
    try:
        number = float(value.strip().replace(",", ".") if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise PersonaEditError(f"{field}: {value!r} is not {allowed}", field) from None
    if math.isnan(number) or not 0 <= number <= 1:
        raise PersonaEditError(f"{field}: {value!r} is out of range; it must be {allowed}", field)
    return number


def _items(value: Any) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(p).strip() for p in parts if str(p).strip()]


def _modes(field: str, value: Any) -> list[Mode]:
    allowed = ", ".join(m.value for m in Mode)
    out: list[Mode] = []
    for item in _items(value):
        try:
            out.append(Mode(item.lower()))
        except ValueError:
            close = difflib.get_close_matches(item.lower(), [m.value for m in Mode], n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise PersonaEditError(f"{field}: unknown mode {item!r}; {hint}modes: {allowed}", field) from None
    return out


def _color(field: str, value: Any) -> str:
    text = str(value or "").strip()
    if color_key(text) not in COLORS:
        close = difflib.get_close_matches(color_key(text), sorted(COLORS), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise PersonaEditError(f"{field}: unknown colour {text!r}; {hint}colours: {', '.join(sorted(COLORS))}", field)
    return text


# --- making the new persona ---------------------------------------------------------------------------


def apply_changes(persona: Persona, changes: Mapping[str, Any]) -> Persona:
    """A new persona with `changes` (field -> value, as `parse_assignments` gives) applied.

    Values may also be raw text (a chat command): each is coerced as on the command line. The
    result is validated whole (a template's placeholders, a display name left empty), so a
    change either makes a valid persona or raises `PersonaEditError`; `persona` is unchanged.
    """
    data = persona.model_dump()
    for field, value in changes.items():
        field = _known_field(field)
        value = coerce(field, value)
        head, _, part = field.partition(".")
        if part:
            data[head][part] = value
        else:
            data[head] = value
    template = data["template"]
    unknown = sorted(set(PLACEHOLDER_RE.findall(template)) - PLACEHOLDERS)
    if unknown:
        raise PersonaEditError(
            "template: unknown placeholder " + ", ".join(f"[{u}]" for u in unknown)
            + "; placeholders: " + " ".join(f"[{p}]" for p in sorted(PLACEHOLDERS)), "template")
    try:
        return Persona.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        reason = str(err["msg"]).removeprefix("Value error, ")
        raise PersonaEditError(f"{field}: {reason}", field) from None


def flatten(persona: Persona) -> dict[str, Any]:
    """The persona's fields as `FIELDS` names them (plus `name`), values in JSON form."""
    data = persona.model_dump(mode="json")
    flat: dict[str, Any] = {"name": data["name"]}
    for field in FIELDS:
        head, _, part = field.partition(".")
        flat[field] = data[head][part] if part else data[head]
    return flat


def diff(before: Persona, after: Persona) -> dict[str, tuple[Any, Any]]:
    """What changed, field by field: {"traits.openness": (0.5, 0.8)}; values in JSON form."""
    old, new = flatten(before), flatten(after)
    return {f: (old[f], new[f]) for f in old if old[f] != new[f]}
