"""`/api/investigations`: what an operator needs to see why the orchestrators did what they did.
The list (filters, cursor pages, newest first) and one investigation with its turns: each
persona turn's router scores and reasons, persona, mode, confidence, token usage, model and
timings. Read-only: any valid token."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from adapters.api.access import reader
from adapters.api.context import orchestra
from adapters.api.errors import ApiError
from adapters.api.responses import errors
from engine.memory.records import (
    Phase,
    ThreadKind,
    ThreadRecord,
    ThreadStatus,
    TurnRecord,
)

router = APIRouter(prefix="/api/investigations", tags=["investigations"], dependencies=[Depends(reader)])

_ERRORS = errors()


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class InvestigationSummary(BaseModel):
    id: str = Field(description="readable id, e.g. payments-3")
    platform: str
    workspace: str
    channel: str
    thread: str | None = Field(description="the platform thread it lives in")
    title: str = Field(description="the question that started it")
    type: str
    phase: Phase
    status: ThreadStatus
    lead: str | None
    turns: int = Field(description="persona turns so far")
    created_at: datetime
    updated_at: datetime


class InvestigationPage(BaseModel):
    investigations: list[InvestigationSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: this was the last")


class TurnOut(BaseModel):
    seq: int
    role: str = Field(description="persona, or human (a person's message)")
    author: str = Field(description="the persona's name, or the person's platform id")
    mode: str | None = Field(description="researcher, critic, planner, conversation")
    confidence: str | None
    text: str
    findings: dict[str, Any] | None
    structured: bool = Field(description="false: the model's output failed validation and is kept as written")
    scores: dict[str, float] = Field(default_factory=dict, description="the router's score for each mode")
    reasons: list[str] = Field(default_factory=list, description="why the router chose this mode and persona")
    route: dict[str, Any] | None = Field(description="everything the router recorded (persona_reason, recalled, asks)")
    usage: Usage
    model: str | None
    task_id: int | None
    created_at: datetime
    seconds: float | None = Field(description="seconds since the turn before it (or the investigation's start): "
                                              "how long this turn took, waiting included")


class InvestigationDetail(InvestigationSummary):
    usage: Usage = Field(description="tokens spent in all its turns")
    history: list[TurnOut] = Field(description="every turn, persona and human, in order")


def _summary(rec: ThreadRecord) -> dict[str, Any]:
    return dict(id=rec.id, platform=rec.platform, workspace=rec.workspace, channel=rec.channel, thread=rec.thread,
                title=rec.title, type=rec.inv_type, phase=rec.phase, status=rec.status, lead=rec.lead,
                turns=rec.turn_count, created_at=rec.created_at, updated_at=rec.updated_at)


def _turn(turn: TurnRecord, since: datetime) -> TurnOut:
    route = turn.route or {}
    scores = route.get("scores") if isinstance(route.get("scores"), dict) else {}
    reasons = route.get("reasons") if isinstance(route.get("reasons"), list) else []
    return TurnOut(
        seq=turn.seq, role=turn.role, author=turn.author, mode=turn.mode, confidence=turn.confidence, text=turn.text,
        findings=turn.findings, structured=turn.structured,
        scores={str(k): float(v) for k, v in scores.items() if isinstance(v, (int, float))},
        reasons=[str(r) for r in reasons], route=turn.route,
        usage=Usage(input_tokens=turn.input_tokens, output_tokens=turn.output_tokens), model=turn.model,
        task_id=turn.task_id, created_at=turn.created_at,
        seconds=round(max((turn.created_at - since).total_seconds(), 0.0), 3),
    )


def _cursor(rec: ThreadRecord) -> str:
    raw = json.dumps([rec.created_at.isoformat(), rec.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[datetime, str]:
    try:
        at, id_ = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(id_)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ApiError(422, "invalid", "The cursor is not one this API gave: start again without it.",
                       [{"field": "cursor", "in": "query", "problem": "not a cursor from next_cursor"}]) from None


@router.get("", response_model=InvestigationPage, responses=_ERRORS)
async def list_investigations(
    app=Depends(orchestra),
    channel: str | None = Query(None, description="only this channel (the platform's channel id)"),
    status: ThreadStatus | None = Query(None),
    platform: str | None = Query(None, description="slack, discord, local, api"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: int = Query(50, ge=1, le=100),
) -> InvestigationPage:
    """Investigations, newest first, in pages."""
    after = _after(cursor) if cursor else None
    rows = await app.memory.investigations_page(platform=platform, channel=channel,
                                                status=status.value if status else None, after=after,
                                                limit=limit + 1)
    page = rows[:limit]
    return InvestigationPage(investigations=[InvestigationSummary(**_summary(r)) for r in page],
                             next_cursor=_cursor(page[-1]) if len(rows) > limit else None)


@router.get("/{investigation_id}", response_model=InvestigationDetail, responses=_ERRORS)
async def show_investigation(investigation_id: str, app=Depends(orchestra)) -> InvestigationDetail:
    """One investigation with every turn and why it was taken."""
    rec = await app.memory.get_thread(investigation_id)
    if rec is None or rec.kind != ThreadKind.INVESTIGATION:
        raise ApiError(404, "not_found", f"There is no investigation {investigation_id!r}: "
                                         "GET /api/investigations lists them.")
    turns = await app.memory.turns(rec.id)
    out, since = [], rec.created_at
    for turn in turns:
        out.append(_turn(turn, since))
        since = turn.created_at
    usage = Usage(input_tokens=sum(t.input_tokens for t in turns), output_tokens=sum(t.output_tokens for t in turns))
    return InvestigationDetail(**_summary(rec), usage=usage, history=out)
