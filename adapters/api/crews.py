"""`/api/crews`: start a crew (CrewAI team led by a persona) and follow it like a task.

A crew is a task of kind `crew` on platform `api` (see the crews brief's task contract): the
engine runs it and posts its replies to the API's outbox, so `GET /api/tasks/{id}` and
`/api/tasks/{id}/events` show its turns as for any task; `GET /api/crews/{id}` says where it is.
The request is checked by `engine.crews.request.crew_request`, the same rules as /crew on the
chat platforms. Without crewai installed: 501 with the install command (crewai is looked for,
never imported here: it is heavy).
"""

from __future__ import annotations

import importlib.util
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from adapters.api.access import reader, writer
from adapters.api.context import orchestra
from adapters.api.errors import ApiError
from adapters.api.responses import errors
from engine.crews.request import COMPLEXITIES, DOMAINS, CrewRequestError, crew_request
from engine.models import Task, TaskKind

router = APIRouter(prefix="/api/crews", tags=["crews"])

PLATFORM = WORKSPACE = "api"
INSTALL = "pip install 'orchestra-personas[crew]'"

_ERRORS = errors()


class CrewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=12_000, description="the work, e.g. 'grow the Q3 pipeline'")
    domain: str | None = Field(None, description="one of: " + ", ".join(DOMAINS) + "; left out: read from the text")
    complexity: str | None = Field(None, description="one of: " + ", ".join(COMPLEXITIES) + " (default medium)")
    persona: str | None = Field(None, description="the persona who leads it; left out: chosen by the domain")
    channel: str = Field("api", min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.\-]+$",
                         description="the API channel its memory lives in (as for tasks)")
    thread: str | None = Field(None, min_length=1, max_length=200, description="a thread to follow up in")


class CrewTurn(BaseModel):
    persona: str
    mode: str | None = Field(description="crew-plan, crew-progress, crew-result, crew-review, ...")
    text: str
    findings: dict[str, Any] | None
    created_at: datetime


class CrewOut(BaseModel):
    id: int = Field(description="the task's id: follow it at /api/tasks/{id} and /api/tasks/{id}/events")
    status: str = Field(description="accepted, running, done, failed")
    error: str | None = None
    text: str
    domain: str | None
    complexity: str
    persona: str | None
    channel: str
    thread: str | None
    task: str = Field(description="the task's URL: its replies and findings")
    events: str = Field(description="server-sent events of its turns")
    replies: list[CrewTurn] = Field(default_factory=list, description="its turns so far (GET only)")


def crew_installed() -> bool:
    return importlib.util.find_spec("crewai") is not None


def _not_installed() -> ApiError:
    return ApiError(501, "crew_not_installed",
                    f"Crews need the crew feature, which is not installed here: {INSTALL} (then restart the bot).",
                    {"install": INSTALL})


def _public(error: str | None) -> str | None:
    """The stored reason without internals ("internal: KeyError" says only that it failed)."""
    if not error:
        return None
    return "failed on our side; see the bot's log" if error.startswith("internal") else error


def _out(task_id: int, status: str, error: str | None, task: Task) -> CrewOut:
    return CrewOut(id=task_id, status=status, error=_public(error), text=task.text, domain=task.options.get("domain"),
                   complexity=task.options.get("complexity", "medium"), persona=task.persona, channel=task.channel,
                   thread=task.thread, task=f"/api/tasks/{task_id}", events=f"/api/tasks/{task_id}/events")


def _field_problem(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid", f"Some fields are not right: {field}.",
                    [{"field": field, "in": "body", "problem": message}])


@router.post("", status_code=202, response_model=CrewOut, dependencies=[Depends(writer)],
             responses={**errors(403, 501), 200: {"model": CrewOut, "description": "The same Idempotency-Key again: "
                                                                                   "the crew it started."}})
async def start_crew(body: CrewIn = Body(), app=Depends(orchestra),
                     idempotency_key: str | None = Header(None, max_length=200,
                                                          description="a retry with the same key returns the same crew")):
    """Start a crew; answers at once with its task id (202), or the earlier one for a repeated key (200)."""
    if not crew_installed():
        raise _not_installed()
    problems = []
    for field, check in (("domain", lambda: crew_request("", body.domain)),
                         ("complexity", lambda: crew_request("", None, body.complexity))):
        try:
            check()
        except CrewRequestError as e:
            problems.append({"field": field, "in": "body", "problem": str(e)})
    if problems:
        raise ApiError(422, "invalid", "Some fields are not right: " + ", ".join(p["field"] for p in problems) + ".",
                       problems)
    request = crew_request(body.text, body.domain, body.complexity)
    if not request.text:
        raise _field_problem("text", "say what the crew should do")
    persona = None
    if body.persona is not None:
        found = app.personas.get(body.persona.strip().lower())
        if found is None:
            raise _field_problem("persona", f"no persona called {body.persona!r} (known: {', '.join(app.personas.names)})")
        persona = found.name
    event_id = f"crew:{idempotency_key}" if idempotency_key else f"crew:{uuid.uuid4().hex}"
    task = Task(platform=PLATFORM, workspace=WORKSPACE, channel=body.channel, thread=body.thread, user="api",
                text=request.text, event_id=event_id, kind=TaskKind.CREW, persona=persona, options=request.options())
    accepted = await app.engine.submit(task)
    stored = await app.memory.get_task(accepted.task_id)
    out = _out(accepted.task_id, stored.status, stored.error, stored.task)
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if accepted.duplicate else 202)


@router.get("/{crew_id}", response_model=CrewOut, responses=_ERRORS, dependencies=[Depends(reader)])
async def show_crew(crew_id: int, app=Depends(orchestra)) -> CrewOut:
    """Where a crew is: its status; its turns are the task's (`task`, `events`)."""
    stored = await app.memory.get_task(crew_id) if 0 < crew_id < 2**63 else None
    if stored is None or stored.task.kind != TaskKind.CREW or stored.task.platform != PLATFORM:
        raise ApiError(404, "not_found", f"There is no crew {crew_id}: POST /api/crews starts one.")
    out = _out(stored.id, stored.status, stored.error, stored.task)
    out.replies = [CrewTurn(persona=t.author, mode=t.mode, text=t.text, findings=t.findings, created_at=t.created_at)
                   for t in await app.memory.task_turns(stored.id)]
    return out
