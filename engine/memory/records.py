"""What memory stores: tasks, threads (investigations and conversations), turns, posts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.models import Task, utcnow


class TaskStatus(StrEnum):
    ACCEPTED = "accepted"  # stored, not started
    RUNNING = "running"  # a worker has it; on restart it resumes
    DONE = "done"
    FAILED = "failed"  # a model or platform failure was reported; the thread can resume


class StoredTask(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    task: Task
    status: TaskStatus
    error: str | None = None


class ThreadKind(StrEnum):
    INVESTIGATION = "investigation"
    CONVERSATION = "conversation"
    CREW = "crew"  # a crew's work: its plan review, result and result review (engine.crews)


class Phase(StrEnum):
    DISCOVERY = "discovery"
    VALIDATION = "validation"
    PLANNING = "planning"
    COMPLETE = "complete"


class ThreadStatus(StrEnum):
    ACTIVE = "active"  # turns are running or will run
    WAITING = "waiting"  # stopped to ask the people in the thread
    PAUSED = "paused"  # automatic-turn limit or a model failure: a reply resumes it
    COMPLETE = "complete"  # the planner delivered a valid plan
    CLOSED = "closed"  # closed on request, or the maximum number of turns was reached


class ThreadRecord(BaseModel):
    """An investigation or a conversation: everything that happens in one platform thread."""

    id: str  # "payments-1" (investigation), "payments-c1" (conversation); older: "inv-8", "conv-3"
    kind: ThreadKind
    platform: str
    workspace: str
    channel: str
    thread: str | None  # the platform thread id; None until the root post exists
    title: str  # the question that started it
    inv_type: str = "general"  # debugging, architecture, security, performance, ... (investigations)
    phase: Phase = Phase.DISCOVERY
    status: ThreadStatus = ThreadStatus.ACTIVE
    lead: str | None = None  # persona leading it (named by a person, or chosen by domain)
    turn_count: int = 0  # persona turns so far
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class TurnRole(StrEnum):
    PERSONA = "persona"
    HUMAN = "human"


class TurnRecord(BaseModel):
    """One contribution to a thread: a persona's turn (with finding and route) or a person's message."""

    id: int | None = None
    thread_id: str
    seq: int = 0  # assigned by the store: 1, 2, 3 … within the thread
    task_id: int | None = None
    step: int = 0  # the n-th persona turn produced for this task (resume without re-asking)
    role: TurnRole
    author: str  # persona name, or the person's user id
    mode: str | None = None  # researcher / critic / planner / conversation
    text: str  # plain rendering: used for history, recall (FTS) and export
    findings: dict[str, Any] | None = None
    structured: bool = True
    confidence: str | None = None
    route: dict[str, Any] | None = None  # the router's scores and reasons
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Recollection(BaseModel):
    """A piece of earlier work in the same channel, recalled for a new conversation."""

    model_config = ConfigDict(frozen=True)

    thread_id: str
    title: str
    author: str
    mode: str | None
    text: str
    created_at: datetime
    score: float  # higher is better: relevance and recency combined


class ThreadSummary(BaseModel):
    """One line of `memory list`."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: ThreadKind
    title: str
    phase: Phase
    status: ThreadStatus
    lead: str | None
    turns: int
    updated_at: datetime


class ForgetResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    threads: int
    turns: int
    tasks: int


class Placeholder(BaseModel):
    """A "thinking" message shown in a thread for a persona, until her next post replaces it.

    The row is written once the platform has shown it; its `key` names the task's step, so a task
    resumed after a crash in between finds it on the platform by that key. (`message_id` None:
    a row whose message is not known yet; the poster looks for it by key before using it.)
    """

    model_config = ConfigDict(frozen=True)

    key: str
    task_id: int | None
    platform: str
    workspace: str
    channel: str
    thread: str | None
    persona: str
    message_id: str | None = None


class RecentPlace(BaseModel):
    """A place on a platform where work arrived lately (`Memory.recent_places`): a chat adapter
    whose platform does not send again what it missed while down reads these places' history.

    `thread` None is the channel itself (its top level: where a message opening its own thread,
    such as a mention, was posted); otherwise the platform's thread (a DM: the DM channel).
    `last_message_event` is the event id of the message task stored last there (None: no message
    task in the window, e.g. only a command, or a thread known from its investigation)."""

    model_config = ConfigDict(frozen=True)

    workspace: str
    channel: str
    thread: str | None
    last_active: datetime
    last_message_event: str | None = None
