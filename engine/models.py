"""The platform-neutral messages that cross the boundary between adapters and the engine.

Adapters translate a platform event into a `Task` and a `Reply` into a platform post; nothing
else about Slack, Discord or the terminal reaches the engine.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Texts longer than this are cut (with a visible note) before they reach a model; the whole
#: text is still stored with the task, so nothing is lost.
MAX_TASK_TEXT = 12_000


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class TaskKind(StrEnum):
    """What a person asked for. Adapters map platform gestures onto these."""

    MESSAGE = "message"  # a mention, a DM, or a reply in a thread
    INVESTIGATE = "investigate"  # /investigate TEXT: start an investigation
    CHALLENGE = "challenge"  # button/command: send the investigation back to the critic
    PLAN = "plan"  # button/command: move the investigation to planning
    CLOSE = "close"  # button/command: close the investigation
    CONTINUE = "continue"  # resume a paused investigation (scheduler nudge, "continue")
    CREW = "crew"  # /crew TEXT, or (text empty, in an investigation's thread) hand its plan to a crew


class Task(BaseModel):
    """One thing a person asked for, as the engine sees it."""

    model_config = ConfigDict(frozen=True)

    platform: str  # "slack", "discord", or "local" (the terminal and `orchestra investigate`)
    workspace: str  # Slack team id, Discord guild id, "local"
    channel: str
    thread: str | None = None  # thread root id; None: a new top-level conversation
    user: str
    text: str = ""
    event_id: str  # the platform's id for the event; the dedupe key
    kind: TaskKind = TaskKind.MESSAGE
    persona: str | None = None  # a persona the adapter already knows is addressed
    reply_to: str | None = None  # platform message id this message replies to
    message_id: str | None = None  # the platform id of the person's own message
    #: Options a command carried beside its text (crews: "domain", "complexity"); see engine.crews.request
    options: dict[str, str] = Field(default_factory=dict)
    received_at: datetime = Field(default_factory=utcnow)

    @property
    def thread_key(self) -> tuple[str, str, str, str]:
        """Turns with the same key run one at a time, in order."""
        return (self.platform, self.workspace, self.channel, self.thread or self.event_id)


class Voice(BaseModel):
    """How a persona looks on a platform: what an adapter needs to post as her."""

    model_config = ConfigDict(frozen=True)

    name: str  # key, lower case: "sophia"
    display_name: str  # "Sophia"
    emoji: str  # ":microscope:" (Slack short code)
    emoji_char: str = ""  # "🔬" (for terminals and Discord text)
    avatar_url: str | None = None
    color: str = "white"  # terminal colour name


class ReplyKind(StrEnum):
    ROOT = "root"  # the channel post that opens an investigation; its id becomes the thread
    TURN = "turn"  # a persona's structured turn in an investigation
    ANSWER = "answer"  # a conversational answer
    QUESTION = "question"  # the persona stops and asks the people in the thread
    NOTICE = "notice"  # status: paused, closed, limits reached, usage
    ERROR = "error"  # something went wrong; says what to do next


class Action(BaseModel):
    """A button an adapter may render (Slack Block Kit, Discord components)."""

    model_config = ConfigDict(frozen=True)

    kind: TaskKind  # CHALLENGE, PLAN, CLOSE, or CREW (hand the investigation's plan to a crew)
    label: str
    investigation_id: str


class Reply(BaseModel):
    """One post the engine wants made, in a persona's voice."""

    model_config = ConfigDict(frozen=True)

    kind: ReplyKind
    voice: Voice
    platform: str
    workspace: str
    channel: str
    thread: str | None  # None only for ROOT posts (and top-level DMs)
    text: str  # complete plain-text rendering (fallback text, terminal, notifications)
    mode: str | None = None  # researcher / critic / planner for TURN replies
    content: dict[str, Any] | None = None  # structured finding, for rich rendering
    structured: bool = True  # False: the model's output failed validation and is shown as is
    offline: bool = False  # produced by the offline rehearsal provider
    investigation_id: str | None = None
    title: str | None = None  # ROOT: the investigation's question; TURN: a heading
    actions: list[Action] = Field(default_factory=list)
    key: str = ""  # unique per task and post; the engine's record of what was posted
    #: The platform id of the person who asked: the only one an adapter may mention (notify).
    #: Any other mention in the text, whoever wrote it, is shown without notifying anyone.
    asker: str | None = None


class PostedMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: str
    thread: str | None = None  # the thread the message lives in (for ROOT: its own id)


class Accepted(BaseModel):
    """The engine's answer to `submit`: the task is stored and will be worked on."""

    model_config = ConfigDict(frozen=True)

    task_id: int
    duplicate: bool = False


class TaskRefused(ValueError):
    """This task can never be stored (text the encoder refuses, a field of the wrong type, a row
    the database rejects). Raised by `submit` for that task alone; the others in its batch are
    stored. Retrying cannot help, unlike a transient error (a locked database), which is raised
    as it is so that the platform retries."""
