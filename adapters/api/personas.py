"""`/api/personas`: list, show, create, update, archive: through `App.persona_admin`, the same
service (validation, active source, change log) as the CLI's `orchestra persona ...` and chat's
/persona. The API only translates: JSON in, the service's answer (or its refusal) out.

An invalid persona is refused with 422 and every problem listed field by field in `details`
(`[{"field", "in", "problem"}]`, the shape of every validation error): each field is checked
on its own with the service's own rules first, so one request shows all its mistakes, not
just the first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from adapters.api.access import reader, writer
from adapters.api.context import orchestra
from adapters.api.errors import ApiError
from adapters.api.responses import errors
from engine.personas.admin import READ_ONLY, PersonaAdmin
from engine.personas.edit import PersonaEditError, apply_changes
from engine.personas.model import Persona

router = APIRouter(prefix="/api/personas", tags=["personas"])

#: Who the change log names for a change made through the API.
ACTOR = "api"

_ERRORS = errors()
_WRITE_ERRORS = errors(403, 409, s409="The change conflicts with the set (a name taken, the cast, the last "
                                        "persona, a read-only source).")


class TraitsIn(BaseModel):
    """OCEAN traits, each a number from 0 to 1; only the ones given change."""

    model_config = ConfigDict(extra="forbid")

    openness: float | None = None
    conscientiousness: float | None = None
    extraversion: float | None = None
    agreeableness: float | None = None
    neuroticism: float | None = None


class AvatarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emoji: str | None = Field(None, description="Slack short code, e.g. :microscope:")
    emoji_char: str | None = Field(None, description="the emoji itself, for terminals and Discord")
    url: str | None = Field(None, description="an image URL, or null for none")


class PersonaFields(BaseModel):
    """The fields to set; those left out keep their value. Ranges and known values (colours,
    modes, template placeholders) are checked by the persona service, as on the command line."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = None
    role: str | None = None
    backstory: str | None = None
    traits: TraitsIn | None = None
    humor: float | None = Field(None, description="0 (none) to 1")
    formality: float | None = Field(None, description="0 (casual) to 1")
    domains: list[str] | None = None
    avatar: AvatarIn | None = None
    color: str | None = None
    preferred_modes: list[str] | None = Field(None, description="researcher, critic, planner, conversation")
    model: str | None = Field(None, description="a model name for her turns, or null for the default")
    template: str | None = None

    def assignments(self) -> dict[str, Any]:
        """The fields given, named as the CLI names them: {"traits.openness": 0.8, "role": ...}."""
        flat: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if isinstance(value, (TraitsIn, AvatarIn)):
                for part in value.model_fields_set:
                    flat[f"{name}.{part}"] = getattr(value, part)
            else:
                flat[name] = value
        return flat


class PersonaCreate(PersonaFields):
    name: str = Field(description="her key: lower case, unique; it cannot change later")
    copy_from: str | None = Field(None, description="start from a copy of this persona instead of the neutral template")


class PersonaList(BaseModel):
    personas: list[Persona]
    source: str = Field(description="where the personas live: the YAML file, Notion, or the shipped defaults")
    writable: bool


class PersonaChanged(BaseModel):
    persona: Persona
    message: str


class PersonaChangeOut(BaseModel):
    at: datetime
    actor: str = Field(description="who: a chat user's id, the OS user of the CLI, or api")
    action: str = Field(description="create, update, archive, import")
    source: str
    changes: dict[str, list[Any]] = Field(description="field -> [old, new]")


class PersonaHistory(BaseModel):
    name: str
    changes: list[PersonaChangeOut] = Field(description="oldest first")


class PersonaArchived(BaseModel):
    archived: str
    message: str


def _admin(app=Depends(orchestra)) -> PersonaAdmin:
    return app.persona_admin


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "in": "body", "problem": message}


def _invalid(problems: list[dict[str, str]]) -> ApiError:
    names = ", ".join(dict.fromkeys(p["field"] for p in problems))
    return ApiError(422, "invalid_persona", f"The persona is not valid: {names}. Nothing was changed.", problems)


def _check_each(base: Persona, changes: dict[str, Any]) -> None:
    """Every field on its own against the service's rules, so all problems are listed at once."""
    problems = []
    for field, value in sorted(changes.items()):
        try:
            apply_changes(base, {field: value})
        except PersonaEditError as e:
            problems.append(_problem(e.field or field, str(e)))
    if problems:
        raise _invalid(problems)


async def _current(admin: PersonaAdmin, *, writing: bool) -> list[Persona]:
    if writing and not admin.source.writable:
        raise ApiError(409, "read_only_source", READ_ONLY[0].upper() + READ_ONLY[1:] + ".")
    try:
        return await admin.current()
    except PersonaEditError as e:
        raise ApiError(409, "source_unusable", str(e)) from None


def _find(personas: list[Persona], name: str) -> Persona | None:
    key = name.strip().lower()
    return next((p for p in personas if p.name == key), None)


def _not_found(name: str, known: list[Persona]) -> ApiError:
    return ApiError(404, "not_found", f"There is no persona called {name.strip().lower()!r}.",
                    {"known": [p.name for p in known]})


@router.get("", response_model=PersonaList, responses=_ERRORS, dependencies=[Depends(reader)])
async def list_personas(app=Depends(orchestra)) -> PersonaList:
    """The personas the bot uses now."""
    admin = app.persona_admin
    return PersonaList(personas=list(app.personas), source=admin.source.name, writable=admin.source.writable)


@router.get("/{name}", response_model=Persona, responses=_ERRORS, dependencies=[Depends(reader)])
async def show_persona(name: str, app=Depends(orchestra)) -> Persona:
    persona = app.personas.get(name.strip().lower())
    if persona is None:
        raise _not_found(name, list(app.personas))
    return persona


@router.get("/{name}/history", response_model=PersonaHistory, responses=_ERRORS, dependencies=[Depends(reader)])
async def persona_history(name: str, app=Depends(orchestra)) -> PersonaHistory:
    """Who changed what, and when (archived personas included): the CLI's `persona history`."""
    key = name.strip().lower()
    changes = await app.memory.persona_changes(key)
    if not changes and app.personas.get(key) is None:
        raise _not_found(name, list(app.personas))
    return PersonaHistory(name=key, changes=[
        PersonaChangeOut(at=c.at, actor=c.actor, action=c.action, source=c.source,
                         changes={f: list(v) for f, v in c.changes.items()}) for c in changes])


@router.post("", status_code=201, response_model=PersonaChanged, responses=_WRITE_ERRORS,
             dependencies=[Depends(writer)])
async def create_persona(body: PersonaCreate = Body(), admin: PersonaAdmin = Depends(_admin)) -> PersonaChanged:
    """A new persona, from the neutral template or a copy of `copy_from`, with the fields given."""
    current = await _current(admin, writing=True)
    key = body.name.strip().lower()
    if key and _find(current, key) is not None:
        raise ApiError(409, "exists", f"There is already a persona called {key}: change her with PATCH /api/personas/{key}.")
    changes = body.assignments()
    changes.pop("name", None)
    changes.pop("copy_from", None)
    base = _find(current, body.copy_from) if body.copy_from else None
    if body.copy_from and base is None:
        raise _invalid([_problem("copy_from", f"no such persona (known: {', '.join(p.name for p in current)})")])
    if current or base:
        _check_each(base or current[0], changes)
    try:
        message = await admin.create(body.name, changes, actor=ACTOR, template=body.copy_from)
    except PersonaEditError as e:
        raise _invalid([_problem(e.field or "body", str(e))]) from None
    persona = _find(await admin.current(), key)
    assert persona is not None  # just written
    return PersonaChanged(persona=persona, message=message)


@router.patch("/{name}", response_model=PersonaChanged, responses=_WRITE_ERRORS, dependencies=[Depends(writer)])
async def update_persona(name: str, body: PersonaFields = Body(), admin: PersonaAdmin = Depends(_admin)) -> PersonaChanged:
    """Change the fields given; the others keep their value."""
    current = await _current(admin, writing=True)
    before = _find(current, name)
    if before is None:
        raise _not_found(name, current)
    changes = body.assignments()
    if not changes:
        raise _invalid([_problem("body", "say what to change, e.g. {\"humor\": 0.3}")])
    _check_each(before, changes)
    try:
        message = await admin.set(before.name, changes, actor=ACTOR)
    except PersonaEditError as e:
        raise _invalid([_problem(e.field or "body", str(e))]) from None
    after = _find(await admin.current(), before.name)
    assert after is not None
    return PersonaChanged(persona=after, message=message)


@router.delete("/{name}", response_model=PersonaArchived, responses=_WRITE_ERRORS, dependencies=[Depends(writer)])
async def archive_persona(name: str, admin: PersonaAdmin = Depends(_admin)) -> PersonaArchived:
    """Stop using a persona (her turns stay in memory). Refused for the cast and the last one."""
    current = await _current(admin, writing=True)
    persona = _find(current, name)
    if persona is None:
        raise _not_found(name, current)
    try:
        message = await admin.archive(persona.name, actor=ACTOR)
    except PersonaEditError as e:
        raise ApiError(409, "refused", str(e)[0].upper() + str(e)[1:] + ".") from None
    return PersonaArchived(archived=persona.name, message=message)
