"""A Notion page <-> a persona: the database's properties, read and written.

Reading is forgiving: any property may be missing or empty (a clear default is used, and one
warning per page names it), text is joined whole from all its segments, and a number typed as
text still counts. Writing splits long text into the segments Notion accepts.
"""

from __future__ import annotations

from typing import Any

from engine.personas.model import Persona
from engine.personas.source import PersonaSourceError

#: Notion's limits on a rich text value: 2000 characters a segment, 100 segments.
SEGMENT = 2000
MAX_SEGMENTS = 100
TRAITS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")

#: Property name -> its Notion type, as `create_database` makes them.
PROPERTIES: dict[str, str] = {
    "Name": "title",
    "Display Name": "rich_text",
    "Role": "rich_text",
    "Backstory": "rich_text",
    **{t.capitalize(): "number" for t in TRAITS},
    "Humor": "number",
    "Formality": "number",
    "Prompt Template": "rich_text",
    "Domains": "multi_select",
    "Avatar": "rich_text",  # the emoji, its Slack :shortcode: and/or an image URL, space-separated
    "Colour": "select",
    "Preferred Modes": "multi_select",
    "Model": "rich_text",
}

#: What an empty or missing property becomes (each one with a warning naming the page).
DEFAULT_ROLE = "Team member"
DEFAULT_LEVEL = 0.5
DEFAULT_TEMPLATE = (
    "You are [name], [role] of the Orchestra team. Your domains: [domains].\n[backstory]\n\n"
    "Personality: [traits]\nCommunication style: [style]\n\n[mode]\n\n"
    "Channel memory (earlier work in this channel, most relevant first):\n[memory]\n\nTask: [task]"
)


# --- reading properties ------------------------------------------------------------------------------


def plain(prop: dict[str, Any] | None) -> str:
    """The text of a property, whatever its type; rich text in several segments read whole."""
    if not prop:
        return ""
    kind = prop.get("type") or ""
    value = prop.get(kind)
    if kind in ("title", "rich_text"):
        return "".join(seg.get("plain_text") or seg.get("text", {}).get("content", "") for seg in value or [])
    if kind == "select":
        return (value or {}).get("name", "")
    if kind == "multi_select":
        return ", ".join(o.get("name", "") for o in value or [])
    if kind in ("number", "url", "email", "phone_number"):
        return "" if value is None else str(value)
    if kind == "formula":
        return plain({"type": (value or {}).get("type"), **(value or {})})
    return ""


def _names(prop: dict[str, Any] | None) -> list[str]:
    if prop and prop.get("type") == "multi_select":
        return [o["name"] for o in prop.get("multi_select") or [] if o.get("name")]
    return [w.strip() for w in plain(prop).split(",") if w.strip()]


def _number(prop: dict[str, Any] | None) -> float | str | None:
    if prop and prop.get("type") == "number":
        return prop.get("number")
    text = plain(prop).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return text  # validation names it: "'high' is not a number"


def _avatar(text: str) -> dict[str, Any]:
    avatar: dict[str, Any] = {}
    for word in text.split():
        if word.startswith(("http://", "https://")):
            avatar["url"] = word
        elif word.startswith(":") and word.endswith(":") and len(word) > 2:
            avatar["emoji"] = word
        else:
            avatar["emoji_char"] = word
    return avatar


def page_label(page: dict[str, Any]) -> str:
    title = next((plain(p) for p in (page.get("properties") or {}).values() if p.get("type") == "title"), "")
    return f"Notion page {title.strip()!r}" if title.strip() else f"Notion page {page.get('id')} (untitled)"


def page_settings(page: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """A page's properties as persona settings, defaults filled in (each with a warning)."""
    props = page.get("properties") or {}
    label = page_label(page)
    title = next((plain(p) for p in props.values() if p.get("type") == "title"), "").strip()

    used: list[str] = []  # "Role (missing): 'Team member'", one warning for the page at the end

    def text(name: str, default: str | None, why: str = "") -> str | None:
        value = plain(props.get(name)).strip() if name != "Prompt Template" else plain(props.get(name))
        if value.strip():
            return value
        if default is not None and why:
            used.append(f"{name} ({'missing' if name not in props else 'empty'}): {why}")
        return default

    settings: dict[str, Any] = {
        "name": title.lower(),
        "display_name": text("Display Name", title) or title,
        "role": text("Role", DEFAULT_ROLE, f"{DEFAULT_ROLE!r}"),
        "backstory": text("Backstory", "", "no backstory"),
        "template": text("Prompt Template", DEFAULT_TEMPLATE, "the standard prompt template"),
        "traits": {},
    }
    for trait in (*TRAITS, "humor", "formality"):
        key = trait.capitalize()
        value = _number(props.get(key))
        if value is None:
            used.append(f"{key} ({'missing' if key not in props else 'empty'}): {DEFAULT_LEVEL}")
            value = DEFAULT_LEVEL
        if trait in TRAITS:
            settings["traits"][trait] = value
        else:
            settings[trait] = value
    if _names(props.get("Domains")):
        settings["domains"] = [d.lower() for d in _names(props.get("Domains"))]
    if plain(props.get("Avatar")).strip():
        settings["avatar"] = _avatar(plain(props.get("Avatar")))
    if plain(props.get("Colour")).strip():
        settings["color"] = plain(props.get("Colour")).strip()
    if _names(props.get("Preferred Modes")):
        settings["preferred_modes"] = [m.lower() for m in _names(props.get("Preferred Modes"))]
    if plain(props.get("Model")).strip():
        settings["model"] = plain(props.get("Model")).strip()
    if used:
        warnings.append(f"{label}: using defaults for {'; '.join(used)}")
    return settings


# --- writing properties ------------------------------------------------------------------------------


def rich_text(value: str) -> list[dict[str, Any]]:
    """`value` in segments of at most 2000 characters (at most 100 of them: Notion's limits)."""
    parts = [value[i : i + SEGMENT] for i in range(0, len(value), SEGMENT)]
    if len(parts) > MAX_SEGMENTS:
        raise PersonaSourceError(f"a text of {len(value)} characters is longer than Notion takes "
                                 f"({SEGMENT * MAX_SEGMENTS}): shorten it", transient=False)
    return [{"type": "text", "text": {"content": part}} for part in parts]


def page_properties(persona: Persona) -> dict[str, Any]:
    title = persona.display_name if persona.display_name.strip().lower() == persona.name else persona.name
    avatar = " ".join(v for v in (persona.avatar.emoji_char, persona.avatar.emoji, persona.avatar.url) if v)
    props: dict[str, Any] = {
        "Name": {"title": rich_text(title)},
        "Display Name": {"rich_text": rich_text(persona.display_name)},
        "Role": {"rich_text": rich_text(persona.role)},
        "Backstory": {"rich_text": rich_text(persona.backstory)},
        **{t.capitalize(): {"number": getattr(persona.traits, t)} for t in TRAITS},
        "Humor": {"number": persona.humor},
        "Formality": {"number": persona.formality},
        "Prompt Template": {"rich_text": rich_text(persona.template)},
        "Domains": {"multi_select": [{"name": d} for d in persona.domains]},
        "Avatar": {"rich_text": rich_text(avatar)},
        "Colour": {"select": {"name": persona.color}},
        "Preferred Modes": {"multi_select": [{"name": str(m)} for m in persona.preferred_modes]},
        "Model": {"rich_text": rich_text(persona.model or "")},
    }
    return props


def database_schema() -> dict[str, Any]:
    """The properties of a new personas database's data source."""
    return {name: {kind: {}} for name, kind in PROPERTIES.items()}
