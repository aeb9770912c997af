"""Slack payloads → `Task`s, and the adapter's own short texts. Pure functions, no SDK.

Event ids: a message and the mention inside it arrive as two events (`message` and
`app_mention`) with different envelope ids, so a message's dedupe key is `channel:ts`, the
same for both and for every retry. Slash commands use their `trigger_id`, buttons the
action's `action_ts` and the clicking user.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from adapters.slack.blocks import escape, mention, truncate
from engine.crews.request import COMPLEXITIES, DOMAINS, CrewRequest
from engine.memory.records import ForgetResult, ThreadSummary
from engine.models import Task, TaskKind

PLATFORM = "slack"

#: Message subtypes a person makes that still count as a message to us.
PERSON_SUBTYPES = {None, "thread_broadcast", "file_share"}


class Malformed(ValueError):
    """A payload without what we need (a channel, a user, a timestamp) or with the wrong types."""


#: What a listener raises on a payload it cannot read: answered with a 400 and one log line.
#: (pydantic's ValidationError is a ValueError; Bolt's own parsing raises the others.)
MALFORMED = (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError)


def _text(value: Any, what: str, *, required: bool = True) -> str:
    if isinstance(value, str) and (value or not required):
        return value
    if value is None and not required:
        return ""
    raise Malformed(f"{what} is {'missing' if value in (None, '') else 'not text'}")


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def event_place(event: Any) -> tuple[str, str, str]:
    """(channel, user, ts) of a message event; Malformed unless all three are text, and the
    text and thread fields, when present, are text too."""
    if not isinstance(event, dict):
        raise Malformed("the event is not an object")
    _text(event.get("text"), "event.text", required=False)
    _text(event.get("thread_ts"), "event.thread_ts", required=False)
    return _text(event.get("channel"), "event.channel"), _text(event.get("user"), "event.user"), _text(event.get("ts"), "event.ts")


def command_place(command: Any) -> tuple[str, str]:
    """(channel, user) of a slash command; Malformed unless both are there."""
    if not isinstance(command, dict):
        raise Malformed("the command is not an object")
    return _text(command.get("channel_id"), "command.channel_id"), _text(command.get("user_id"), "command.user_id")


def command_text(command: dict[str, Any]) -> str:
    return _text(command.get("text"), "command.text", required=False).strip()


def command_team(command: dict[str, Any]) -> str:
    return _text(command.get("team_id"), "command.team_id", required=False)


def envelope_problem(body: Any) -> str | None:
    """Why a parsed request body is not something Slack sends, or None when its shape is fine.

    Checked before Bolt sees it: Bolt reads `body["event"]["type"]` and the like while routing
    (and while reporting errors), and would fail with a traceback on other shapes.
    """
    if not isinstance(body, dict):
        return "the body is not an object"
    if "type" in body and not isinstance(body["type"], str):
        return "type is not text"
    if "event" in body:
        event = body["event"]
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return "the event is not an object with a type"
    if body.get("type") == "event_callback" and "event" not in body:
        return "an event_callback without its event"
    if "command" in body and not isinstance(body["command"], str):
        return "command is not text"
    actions = body.get("actions")
    if actions is not None and not (isinstance(actions, list) and all(isinstance(a, dict) for a in actions)):
        return "actions is not a list of objects"
    return None


def describe(body: Any) -> str:
    """What a request was, in a few words, for a log line (never its content)."""
    if not isinstance(body, dict):
        return "a request"
    event = body.get("event")
    if isinstance(event, dict):
        return f"an event ({str(event.get('type'))[:40]})"
    if body.get("command"):
        return f"a command ({str(body.get('command'))[:40]})"
    if body.get("type") == "block_actions":
        return "a button click"
    return f"a request ({str(body.get('type'))[:40]})" if body.get("type") else "a request"


def error_line(error: BaseException) -> str:
    """The error on one short line, for the log."""
    line = " ".join(str(error).split())
    return f"{type(error).__name__}: {line[:160]}" if line else type(error).__name__


def message_event_id(channel: str, ts: str) -> str:
    return f"{channel}:{ts}"


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """Remove the app's own `<@BOTID>` mention(s); the engine reads the persona name after it."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", " ", text or "")
    return re.sub(r"[ \t]{2,}", " ", text or "").strip()


def mentions(text: str, bot_user_id: str | None) -> bool:
    return bool(bot_user_id) and f"<@{bot_user_id}" in (text or "")


def from_person(event: dict[str, Any], bot_user_id: str | None) -> bool:
    """False for bots (ours and others'), edits, deletions and other system messages.
    Malformed for what claims to be a person's message but names nobody."""
    subtype = event.get("subtype")
    if not (subtype is None or isinstance(subtype, str)):
        raise Malformed("event.subtype is not text")
    if subtype not in PERSON_SUBTYPES:
        return False
    if event.get("bot_id") or event.get("bot_profile"):
        return False
    user = event.get("user")
    if not (isinstance(user, str) and user):
        raise Malformed("a person's message without event.user")
    return user != bot_user_id


def message_task(
    event: dict[str, Any],
    *,
    workspace: str,
    bot_user_id: str | None,
    thread: str | None,
) -> Task:
    channel, user, ts = event_place(event)
    parent = event.get("thread_ts")
    return Task(
        platform=PLATFORM,
        workspace=workspace,
        channel=channel,
        thread=thread,
        user=user,
        text=strip_mention(event.get("text") or "", bot_user_id),
        event_id=message_event_id(channel, ts),
        kind=TaskKind.MESSAGE,
        reply_to=parent if parent and parent != ts else None,
        message_id=ts,
    )


def command_task(command: dict[str, Any], kind: TaskKind = TaskKind.INVESTIGATE) -> Task:
    channel, user = command_place(command)
    text = command_text(command)
    trigger = command.get("trigger_id")
    return Task(
        platform=PLATFORM,
        workspace=command_team(command),
        channel=channel,
        thread=None,
        user=user,
        text=text,
        event_id=trigger if isinstance(trigger, str) and trigger else f"{channel}:{user}:{text}",
        kind=kind,
    )


def crew_task(command: dict[str, Any], request: CrewRequest) -> Task:
    """`/crew [options] TEXT`, its options already read (`engine.crews.request.parse_crew_text`):
    a crew at the channel's top level; a persona named first stays in the text for the engine."""
    task = command_task(command, TaskKind.CREW)
    return task.model_copy(update={"text": request.text, "options": request.options()})


def action_task(body: dict[str, Any], action: dict[str, Any], kind: TaskKind) -> Task | None:
    """A button click on one of our posts; None when the payload lacks the message context."""
    message, container = _obj(body.get("message")), _obj(body.get("container"))
    channel = _obj(body.get("channel")).get("id") or container.get("channel_id")
    thread = message.get("thread_ts") or container.get("thread_ts") or message.get("ts") or container.get("message_ts")
    user = _obj(body.get("user")).get("id")
    if not all(isinstance(v, str) and v for v in (channel, thread, user)):
        return None
    team = _obj(body.get("team")).get("id") or _obj(body.get("user")).get("team_id") or ""
    stamp = action.get("action_ts") or body.get("trigger_id") or ""
    return Task(
        platform=PLATFORM,
        workspace=team,
        channel=channel,
        thread=thread,
        user=user,
        text="",
        event_id=f"{stamp}:{user}",
        kind=kind,
        message_id=message.get("ts") or container.get("message_ts"),
    )


class RecentIds:
    """Event ids this process has already handled: its own replies (hints, refusals) are sent once.

    Tasks are deduplicated by the engine in SQLite; this only covers what the adapter says itself.
    """

    def __init__(self, size: int = 10_000):
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first_time(self, event_id: str) -> bool:
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


#: How long a message's buttons count as taken after a click: long enough for our chat.update
#: (paced, 429s waited out) to remove them, short enough that a click after a failed update works.
CLICK_WINDOW = 60.0

ClickKey = tuple[str, str]  # channel, message ts


class RecentClicks:
    """Messages whose buttons were clicked a moment ago: one click per message is submitted.

    Two clicks on the same message (a double click, two people) can arrive before the update
    that removes its buttons lands; their action ids differ, so the engine's event-id dedupe
    does not catch them. This does, for `window` seconds, in this process.
    """

    def __init__(self, window: float = CLICK_WINDOW, *, clock: Callable[[], float] = time.monotonic, size: int = 10_000):
        self.window = window
        self._clock = clock
        self._size = size
        self._taken: OrderedDict[ClickKey, float] = OrderedDict()  # oldest first

    def claim(self, key: ClickKey) -> bool:
        """True for the first click on this message within the window (and record it)."""
        now = self._clock()
        while self._taken:
            oldest, when = next(iter(self._taken.items()))
            if now - when < self.window and len(self._taken) < self._size:
                break
            del self._taken[oldest]
        if key in self._taken:
            return False
        self._taken[key] = now
        return True

    def release(self, key: ClickKey) -> None:
        """Forget a click whose task could not be submitted, so that clicking again works."""
        self._taken.pop(key, None)


def clicked_message(body: dict[str, Any]) -> tuple[str, str, str, list[dict[str, Any]] | None] | None:
    """(channel, ts, text, blocks) of the message whose button was clicked; None without one."""
    container, message = _obj(body.get("container")), _obj(body.get("message"))
    channel = _obj(body.get("channel")).get("id") or container.get("channel_id")
    ts = container.get("message_ts") or message.get("ts")
    if not (isinstance(channel, str) and isinstance(ts, str) and channel and ts) or container.get("is_ephemeral"):
        return None
    blocks = message.get("blocks")
    text = message.get("text")
    return channel, ts, text if isinstance(text, str) else "", blocks if isinstance(blocks, list) else None


# --- the adapter's own words ----------------------------------------------------------------


def usage_text() -> str:
    return (
        "*Start an investigation:* `/investigate [persona] what should we look into?`\n"
        "For example `/investigate why did sign-ups drop last week?` or "
        "`/investigate karen is the new pricing page ready to launch?`\n"
        "The personas post in a thread in this channel; reply there to add evidence."
    )


def crew_usage_text() -> str:
    return (
        "*Start a crew:* `/crew [domain] [complexity]: what should the crew do?`\n"
        "For example `/crew sales high: plan the Q3 pipeline review` or "
        "`/crew sophia, summarise what we know about churn` (options: `domain=research complexity=low ...`).\n"
        f"Domains: {', '.join(DOMAINS)}. Complexity: {', '.join(COMPLEXITIES)} (low: one specialist, "
        "medium: a lead and a support, high: three agents).\n"
        "To hand an investigation's plan to a crew, use the *Hand to a crew* button under the plan."
    )


def crew_error_text(problem: str) -> str:
    """A `/crew` whose options could not be read: what was wrong, and how to ask. Nothing started."""
    return f"{escape(problem)} Nothing was started.\n\n{crew_usage_text()}"


REFUSAL = (
    "Sorry, Orchestra isn't enabled for you here. A workspace admin can allow this channel or "
    "person (ORCHESTRA_ALLOWED_CHANNELS / ORCHESTRA_ALLOWED_USERS)."
)

UNREADABLE = (
    "Sorry, I couldn't read that message (it holds characters I can't store). "
    "Please send it again, retyped rather than pasted."
)

FORGET_REFUSAL = (
    "Sorry, only Orchestra's admins can make a channel forget: ask one of them "
    "(they are listed in ORCHESTRA_SLACK_ADMINS)."
)

PERSONA_REFUSAL = (
    "Sorry, only Orchestra's admins can change the personas: ask one of them "
    "(they are listed in ORCHESTRA_SLACK_ADMINS). `/personas` shows who is who."
)

PERSONA_NO_ADMINS = (
    "Nobody can change the personas from Slack yet: set ORCHESTRA_SLACK_ADMINS to the Slack user ids "
    "of Orchestra's admins and restart it (or use `orchestra personas set ...` on the server)."
)

FORGET_NO_ADMINS = (
    "Nobody can make a channel forget yet: set ORCHESTRA_SLACK_ADMINS to the Slack user ids of "
    "Orchestra's admins and restart it."
)


def unreachable_text(error: str) -> str:
    return (
        f"I can't post in this channel (`{error}`). Invite me with `/invite @Orchestra` "
        "(or run the command in a channel I'm in), then try again."
    )


#: What a button asked for, when the click's payload does not carry its label.
ACTION_WORDS = {"challenge": "Challenge", "plan": "Move to planning", "close": "Close", "crew": "Hand to a crew"}


def action_taken_text(label: str, user: str) -> str:
    """The context line that replaces a message's buttons once one was clicked."""
    return f"↪ {escape(truncate(label.strip(), 75))} requested by {mention(user)}"


def _when(dt: datetime) -> str:
    """A Slack date token: shown in the reader's own time zone."""
    fallback = dt.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(dt.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def memory_text(summaries: list[ThreadSummary]) -> str:
    if not summaries:
        return "This channel remembers nothing yet. Mention me or run `/investigate` to start."
    lines = [f"*This channel remembers {len(summaries)} thread(s):*"]
    for s in summaries[:40]:
        lead = f", led by {s.lead.capitalize()}" if s.lead else ""
        title = s.title if len(s.title) <= 120 else s.title[:119] + "…"
        lines.append(
            f"• *{escape(title)}* ({s.kind.value}, {s.phase.value}, {s.status.value}{lead}, "
            f"{s.turns} turn(s), {_when(s.updated_at)}) `{s.id}`"
        )
    if len(summaries) > 40:
        lines.append(f"…and {len(summaries) - 40} older one(s).")
    lines.append("An admin can clear it with `/forget`.")
    return "\n".join(lines)


def forget_text(result: ForgetResult) -> str:
    if not (result.threads or result.turns or result.tasks):
        return "There was nothing to forget in this channel."
    return (
        f"Done: this channel's memory is gone ({result.threads} thread(s), {result.turns} turn(s), "
        f"{result.tasks} task(s)). The personas start fresh here."
    )
