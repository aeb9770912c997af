"""Tasks over HTTP: submit one (`POST /api/tasks`), see it (`GET /api/tasks/{id}`), list them,
and follow one as server-sent events (`GET /api/tasks/{id}/events`).

API tasks live on their own platform and workspace (`api`), so an API channel's memory never
mixes with Slack's or Discord's. An `Idempotency-Key` becomes the task's event id: the memory
already stores each (platform, workspace, event id) once, so a retried POST finds its task.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, AsyncIterator

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from adapters.api.access import reader, writer
from adapters.api.context import orchestra
from adapters.api.errors import ApiError
from adapters.api.outbox import PLATFORM, WORKSPACE, ApiOutbox
from engine.memory.api_queries import TaskRow
from engine.memory.records import TaskStatus, TurnRecord
from engine.models import Task, TaskKind, TaskRefused

router = APIRouter(prefix="/api/tasks", tags=["tasks"])

#: How long an event stream waits for a post before it looks at the memory anyway (a status
#: change is not a post).
POLL_SECONDS = 0.5
MAX_TEXT = 20_000


class Kind(StrEnum):
    CONVERSATION = "conversation"
    INVESTIGATION = "investigation"


KINDS = {Kind.CONVERSATION: TaskKind.MESSAGE, Kind.INVESTIGATION: TaskKind.INVESTIGATE}


class TaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT, pattern=r"\S", description="what to ask or investigate")
    persona: str | None = Field(None, max_length=100, description="who answers (default: chosen by the topic)")
    kind: Kind = Kind.CONVERSATION
    channel: str = Field("api", min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.\-]+$",
                         description="whose memory the task uses (API channels are their own)")
    thread: str | None = Field(None, min_length=1, max_length=200,
                               description="follow up in this thread: a task's `thread` from GET /api/tasks/{id}")


class Turn(BaseModel):
    persona: str
    mode: str | None
    text: str
    findings: dict[str, Any] | None
    confidence: str | None
    created_at: datetime


class TaskOut(BaseModel):
    id: int
    status: TaskStatus
    kind: Kind | str
    text: str
    persona: str | None
    channel: str
    thread: str | None = Field(description="the thread to follow up in (pass it as `thread`)")
    thread_id: str | None = Field(description="the investigation's or conversation's id (e.g. api-1)")
    error: str | None
    created_at: datetime
    updated_at: datetime
    replies: list[Turn] = Field(default_factory=list)


class TaskPage(BaseModel):
    tasks: list[TaskOut]
    next_cursor: str | None


def _kind(task: Task) -> Kind | str:
    for kind, task_kind in KINDS.items():
        if task.kind == task_kind:
            return kind
    return task.kind.value


def _turn(t: TurnRecord) -> Turn:
    return Turn(persona=t.author, mode=t.mode, text=t.text, findings=t.findings, confidence=t.confidence,
                created_at=t.created_at)


async def _task_out(app, row: TaskRow, *, full: bool = True) -> TaskOut:
    stored, task = row.stored, row.stored.task
    thread = await app.memory.task_thread(stored.id) if full else None
    turns = await app.memory.task_turns(stored.id) if full else []
    return TaskOut(
        id=stored.id, status=stored.status, kind=_kind(task), text=task.text, persona=task.persona,
        channel=task.channel, thread=(thread.thread if thread else task.thread), thread_id=thread.id if thread else None,
        error=_public_error(stored.error), created_at=row.created_at, updated_at=row.updated_at,
        replies=[_turn(t) for t in turns],
    )


def _public_error(error: str | None) -> str | None:
    """The stored reason without internals: "internal: KeyError" says only that it failed."""
    if not error:
        return None
    return "failed on our side; see the bot's log" if error.startswith("internal") else error


async def _get(app, task_id: int) -> TaskRow:
    row = await app.memory.api_task(PLATFORM, task_id)
    if row is None:
        raise ApiError(404, "not_found", f"No task {task_id}. GET /api/tasks lists them.")
    return row


# --- submit -------------------------------------------------------------------------------------


@router.post("", status_code=202, response_model=TaskOut, dependencies=[Depends(writer)],
             responses={200: {"model": TaskOut, "description": "the task this Idempotency-Key submitted before"}})
async def submit(
    body: TaskIn,
    response: Response,
    app=Depends(orchestra),
    idempotency_key: Annotated[str | None, Header(max_length=200, pattern=r"^[\x21-\x7e]+$")] = None,
) -> TaskOut:
    """Accepted at once (202); follow it with GET /api/tasks/{id} or its /events. A retry with the
    same `Idempotency-Key` returns the same task (200)."""
    if body.persona and app.personas.get(body.persona) is None:
        raise ApiError(422, "unknown_persona", f"No persona {body.persona!r}.",
                       [{"field": "persona", "in": "body", "problem": f"one of: {', '.join(app.personas.names)}"}])
    event_id = f"key:{idempotency_key}" if idempotency_key else f"api:{uuid.uuid4().hex}"
    if idempotency_key:
        earlier = await app.memory.api_task_by_event(PLATFORM, WORKSPACE, event_id)
        if earlier is not None:
            return await _same_request(app, earlier, body, response)
    task = Task(
        platform=PLATFORM, workspace=WORKSPACE, channel=body.channel, thread=body.thread, user="api",
        text=body.text, event_id=event_id, kind=KINDS[body.kind], persona=body.persona,
        message_id=f"q-{uuid.uuid4().hex[:16]}",
    )
    try:
        accepted = await app.engine.submit(task)
    except TaskRefused:
        raise ApiError(422, "unreadable", "This text cannot be stored (e.g. a lone surrogate): send plain UTF-8 text.",
                       [{"field": "text", "in": "body", "problem": "cannot be stored"}]) from None
    row = await _get(app, accepted.task_id)
    if accepted.duplicate:  # two retries at once: the other one stored it
        return await _same_request(app, row, body, response)
    return await _task_out(app, row, full=False)


async def _same_request(app, row: TaskRow, body: TaskIn, response: Response) -> TaskOut:
    task = row.stored.task
    if (task.text, task.channel, task.persona, task.thread, task.kind) != (
        body.text, body.channel, body.persona, body.thread, KINDS[body.kind]
    ):
        raise ApiError(409, "idempotency_key_reused",
                       "This Idempotency-Key was used for a different task: use a new key for a new task.",
                       {"task_id": row.stored.id})
    response.status_code = 200
    return await _task_out(app, row)


# --- read ---------------------------------------------------------------------------------------


def _cursor(task_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{task_id}".encode()).decode().rstrip("=")


def _after(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("t") or not text[1:].isdigit():
            raise ValueError(cursor)
        return int(text[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "bad_cursor", "This cursor is not one we gave: pass `next_cursor` from the last page, "
                       "or leave it out to start again.") from None


@router.get("", response_model=TaskPage, dependencies=[Depends(reader)])
async def list_tasks(
    app=Depends(orchestra),
    status: TaskStatus | None = None,
    channel: Annotated[str | None, Query(max_length=80)] = None,
    persona: Annotated[str | None, Query(max_length=100)] = None,
    since: datetime | None = Query(None, description="only tasks created at or after this time (ISO 8601)"),
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> TaskPage:
    """Newest first. Pass `next_cursor` as `cursor` for the next page (null: no more)."""
    if since is not None:
        try:
            since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        except (OverflowError, ValueError):  # "0001-01-01T00:00+01:00" is before year 1 in UTC
            raise ApiError(422, "invalid", "`since` is out of range: give a time from year 1 to 9999 (ISO 8601).",
                           [{"field": "since", "in": "query", "problem": "out of range"}]) from None
    rows = await app.memory.api_tasks(
        PLATFORM, status=status.value if status else None, channel=channel, persona=persona, since=since,
        before_id=_after(cursor) if cursor else None, limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return TaskPage(tasks=[await _task_out(app, r) for r in rows],
                    next_cursor=_cursor(rows[-1].stored.id) if more and rows else None)


TaskId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/{task_id}", response_model=TaskOut, dependencies=[Depends(reader)])
async def get_task(task_id: TaskId, app=Depends(orchestra)) -> TaskOut:
    """Its status, its replies (each persona turn with its findings), its thread."""
    return await _task_out(app, await _get(app, task_id))


# --- follow -------------------------------------------------------------------------------------


def _sse(event: str, data: Any, event_id: str | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, default=str))
    return "\n".join(lines) + "\n\n"


async def _follow(app, outbox: ApiOutbox, request: Request, task_id: int) -> AsyncIterator[str]:
    """What is stored first (a late subscriber misses nothing), then each reply as it comes,
    then `done` or `failed` with the task as it ended."""
    sent = 0
    with outbox.listen() as posted:
        while True:
            posted.clear()
            row = await _get(app, task_id)
            turns = await app.memory.task_turns(task_id)
            for t in turns[sent:]:
                yield _sse("reply", _turn(t).model_dump(mode="json"), event_id=str(t.id))
            sent = max(sent, len(turns))
            if row.stored.status in (TaskStatus.DONE, TaskStatus.FAILED):
                final = await _task_out(app, row)
                yield _sse(row.stored.status.value, final.model_dump(mode="json"))
                return
            if await request.is_disconnected():
                return
            try:
                await asyncio.wait_for(posted.wait(), timeout=POLL_SECONDS)
            except asyncio.TimeoutError:
                pass


@router.get("/{task_id}/events", dependencies=[Depends(reader)],
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`reply` events, then one `done` or `failed` event"}})
async def task_events(task_id: TaskId, request: Request, app=Depends(orchestra)) -> StreamingResponse:
    """Server-sent events: each reply (`event: reply`) as it is posted, then `event: done` or
    `event: failed` with the whole task; the stream then ends."""
    await _get(app, task_id)  # 404 now, not inside the stream
    outbox: ApiOutbox = request.app.state.api_outbox
    return StreamingResponse(_follow(app, outbox, request, task_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
