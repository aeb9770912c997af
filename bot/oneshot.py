"""One task from the shell, start to end: `orchestra investigate`, `reply`, `challenge`, `plan`, `close`.

Each command is one process: it submits one task through the engine (platform `local`, so the
terminal chat and these commands share memory, ordering and exactly-once posting), waits for its
work to finish, prints what was posted, and exits. A process that has ended cannot honour buttons
or "reply in this thread", so what it prints offers the commands that do the same instead
(`orchestra reply payments-1 "…"`), and its last line says how to go on.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from adapters.terminal import Style, TerminalOutbox, color_enabled
from adapters.terminal.render import terminal_width
from adapters.terminal.shell import default_user
from bot.bootstrap import App
from engine.memory.records import ThreadKind, ThreadRecord, ThreadStatus
from engine.models import PostedMessage, Reply, ReplyKind, Task, TaskKind, Voice
from engine.text import visible

LOCAL = "local"
EXIT_USAGE = 2

#: What `orchestra challenge|plan|close ID` asks of the engine.
ACTIONS = {"challenge": TaskKind.CHALLENGE, "plan": TaskKind.PLAN, "close": TaskKind.CLOSE}

# Engine notices speak to a chat: "Reply in this thread…", "/investigate TEXT". Their sentences
# that invite a reply are dropped here (the last line gives the command instead), and the chat
# command becomes the shell's. Only the engine's own notices are rewritten, never a persona's
# answer, which may well talk about replies.
_NOTICE_KINDS = (ReplyKind.ROOT, ReplyKind.NOTICE, ReplyKind.QUESTION, ReplyKind.ERROR)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_REPLY_HINT = re.compile(r"\breply\b.*\b(in this thread|here)\b", re.IGNORECASE)
_CHAT_COMMAND = re.compile(r"/investigate\b(?: TEXT\b)?")


class UsageError(Exception):
    """The person asked for something this command cannot do: the message says what to pass."""


def for_the_shell(reply: Reply) -> Reply:
    """The reply without what a finished process cannot take: buttons, and invitations to reply
    in a thread nobody can type into any more."""
    if reply.kind not in _NOTICE_KINDS:
        return reply.model_copy(update={"actions": []}) if reply.actions else reply
    lines = []
    for line in reply.text.splitlines():
        kept = [s for s in _SENTENCE_END.split(line) if not _REPLY_HINT.search(s)]
        if line.strip() and not kept:
            continue
        lines.append(_CHAT_COMMAND.sub("orchestra investigate TEXT", " ".join(kept)))
    return reply.model_copy(update={"actions": [], "text": "\n".join(lines)})


class ShellOutbox:
    """The terminal's outbox, through `for_the_shell`; remembers what it posted."""

    def __init__(self, *, channel: str, quiet: bool):
        session = uuid.uuid4().hex[:10]
        counter = iter(range(1, 1_000_000_000))
        self.session = session
        self.posts: list[Reply] = []
        self._inner = TerminalOutbox(
            None if quiet else (lambda s: print(s, flush=True)), Style(color_enabled(sys.stdout)),
            new_id=lambda: f"{session}.{next(counter)}", channel=channel,
            on_posted=lambda reply, posted: self.posts.append(reply),
            width=lambda: terminal_width(sys.stdout),  # as the chat wraps: to the window, or COLUMNS
        )

    async def post(self, reply: Reply, replace: str | None = None, resume: PostedMessage | None = None) -> PostedMessage:
        return await self._inner.post(for_the_shell(reply), replace, resume)

    async def working(self, voice: Voice, channel: str, thread: str | None, key: str = "") -> str | None:
        return await self._inner.working(voice, channel, thread, key)

    async def find_posted(self, channel: str, thread: str | None, key: str) -> PostedMessage | None:
        return await self._inner.find_posted(channel, thread, key)

    @property
    def failed(self) -> bool:
        return any(p.kind == ReplyKind.ERROR for p in self.posts)


@dataclass
class Request:
    """One command's task: what kind, which text, which persona, which thread."""

    kind: TaskKind
    text: str = ""
    persona: str | None = None
    channel: str = "terminal"
    thread_id: str | None = None  # continue this investigation (reply, challenge, plan, close)
    as_json: bool = False


def check_text(app: App, text: str, persona: str | None, *, what: str) -> None:
    """Empty, invisible-only or persona-only text, or an unknown @persona: a usage error."""
    named, rest = app.personas.split_addressee(text)
    if persona is not None:
        if not visible(text).strip():
            raise UsageError(f"say {what}")
        return
    unknown = None if named else app.personas.unknown_addressee(text)
    if unknown:
        raise UsageError(f"unknown persona {unknown!r} (known: {', '.join(app.personas.names)})")
    if not rest:
        raise UsageError(f"say {what} after {named.display_name}'s name" if named else f"say {what}")


def resolve_persona(app: App, name: str | None) -> str | None:
    if not name:
        return None
    found = app.personas.get(name.strip().lstrip("@"))
    if found is None:
        raise UsageError(f"unknown persona {name!r} (known: {', '.join(app.personas.names)})")
    return found.name


async def find_investigation(app: App, thread_id: str, kind: TaskKind) -> ThreadRecord:
    """The thread an id names, if this process can continue it; else a UsageError saying why."""
    rec = await app.memory.get_thread(thread_id)
    where = "`orchestra memory list --channel NAME` lists a channel's ids"
    if rec is None:
        raise UsageError(f"no investigation is called {thread_id!r}; {where}")
    if kind != TaskKind.MESSAGE and rec.kind != ThreadKind.INVESTIGATION:
        raise UsageError(f"{rec.id} is a conversation, not an investigation; {where}")
    if rec.platform != LOCAL:
        raise UsageError(f"{rec.id} lives in {rec.platform} (channel {rec.channel}): continue it there")
    if rec.thread is None:
        raise UsageError(f"{rec.id} has not posted its first message yet; try again in a moment")
    return rec


async def run_request(app: App, req: Request) -> int:
    """Submit the task, wait for its work, print it (or one JSON object). The exit code."""
    rec = None
    if req.thread_id is not None:
        rec = await find_investigation(app, req.thread_id, req.kind)
    persona = resolve_persona(app, req.persona)
    if req.kind in (TaskKind.INVESTIGATE, TaskKind.MESSAGE):
        check_text(app, req.text, persona, what="what to investigate" if rec is None else "what is new")
    channel = rec.channel if rec else req.channel
    outbox = ShellOutbox(channel=channel, quiet=req.as_json)
    app.engine.register_outbox(LOCAL, outbox)
    seen = {t.seq for t in await app.memory.turns(rec.id)} if rec else set()
    message_id = f"{outbox.session}.0"
    done = await app.engine.run(Task(
        kind=req.kind, platform=LOCAL, workspace=rec.workspace if rec else LOCAL, channel=channel,
        thread=rec.thread if rec else None, user=default_user(), text=req.text, persona=persona,
        event_id=f"{LOCAL}:{message_id}", message_id=message_id,
    ))
    thread_id = rec.id if rec else done.id if done else None
    final = await app.memory.get_thread(thread_id) if thread_id else None
    if final is None:
        print("orchestra: nothing was started (see the messages above)", file=sys.stderr)
        return 1
    turns = await app.memory.turns(final.id)
    if req.as_json:
        report = investigation_report(final, turns, outbox.posts)
        report["new_turns"] = [t.seq for t in turns if t.role.value == "persona" and t.seq not in seen]
        report["continue"] = next_commands(final)
        print(json.dumps(report, ensure_ascii=False, default=str))
    else:
        kind = final.kind.value.capitalize()  # Investigation, Conversation, Crew
        print(f"{kind} {final.id} · {final.status.value} · phase {final.phase.value} · "
              f"{final.turn_count} turn(s) · #{final.channel} (platform {LOCAL})")
        commands = next_commands(final)
        label = "Start again" if final.status == ThreadStatus.CLOSED else "Continue"
        print(f"{label}: {' · '.join(commands)}")
    return 1 if outbox.failed else 0


def next_commands(rec: ThreadRecord) -> list[str]:
    """What can be done with this thread from the shell now, as commands to copy."""
    if rec.status == ThreadStatus.CLOSED:
        return [f'orchestra investigate "…" --channel {shlex.quote(rec.channel)}']
    commands = [f'orchestra reply {rec.id} "…"']
    if rec.kind == ThreadKind.INVESTIGATION:
        if rec.status != ThreadStatus.COMPLETE:
            commands += [f"orchestra challenge {rec.id}", f"orchestra plan {rec.id}"]
        else:
            commands += [f"orchestra challenge {rec.id}"]
        commands += [f"orchestra close {rec.id}"]
    return commands


def investigation_report(rec, turns, posts) -> dict[str, Any]:
    """The investigation as one JSON object: its state, its persona turns, and what it recalled."""
    persona_turns = [t for t in turns if t.role.value == "persona"]
    recalled: dict[tuple, dict] = {}
    for turn in persona_turns:
        for item in (turn.route or {}).get("recalled", []):
            key = (item.get("thread_id"), item.get("author"), item.get("excerpt"))
            if key not in recalled or item.get("score", 0) > recalled[key].get("score", 0):
                recalled[key] = item
    return {
        "id": rec.id,
        "status": rec.status.value,
        "phase": rec.phase.value,
        "lead": rec.lead,
        "type": rec.inv_type,
        "title": rec.title,
        "platform": rec.platform,
        "workspace": rec.workspace,
        "channel": rec.channel,
        "thread": rec.thread,
        "turn_count": rec.turn_count,
        "turns": [
            {
                "seq": t.seq, "persona": t.author, "mode": t.mode, "confidence": t.confidence,
                "structured": t.structured, "findings": t.findings, "route": t.route, "text": t.text,
                "model": t.model, "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
            }
            for t in persona_turns
        ],
        "human_turns": [{"seq": t.seq, "author": t.author, "text": t.text} for t in turns if t.role.value == "human"],
        "recalled": sorted(recalled.values(), key=lambda r: -r.get("score", 0)),
        "posts": [{"kind": p.kind.value, "persona": p.voice.name, "text": p.text} for p in posts],
    }
