"""Nudges: an investigation that has waited on people longer than a threshold gets one reminder
in its thread, from its lead persona, naming what she is waiting for.

Once per wait: the post's key is `nudge:<investigation id>:<turn count>`, and a wait ends only
with new turns, so the same wait always has the same key (a restart finds it posted), while a
later wait, after people answered and the personas went on, has a new one. Never to a thread
that was answered since it stopped (a person's message, stored or still queued as a task) or
that is closed: checked when choosing, and again under the thread's lane just before posting, so
a reply being worked on at that moment is not talked over.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from engine.memory.records import ThreadRecord, ThreadStatus
from engine.models import Reply, ReplyKind
from engine.personas import Persona

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger(__name__)

WAITING = (ThreadStatus.WAITING, ThreadStatus.PAUSED)


def nudge_key(rec: ThreadRecord) -> str:
    return f"nudge:{rec.id}:{rec.turn_count}"


async def nudge_waiting(engine: Engine, now: datetime, after: timedelta) -> int:
    """Nudge each investigation waiting on people for longer than `after`; how many were sent.

    Only on the platforms running now (a Slack thread waits while only the terminal runs). A
    failed post is logged and tried again on the next run; the others still go out.
    """
    memory, poster = engine.memory, engine.poster
    sent = 0
    for candidate in await memory.waiting_investigations(now - after):
        if candidate.platform not in poster.outboxes:
            continue
        try:
            async with engine.lanes.hold(("thread", candidate.id)):  # not while a turn runs in it
                rec = await memory.get_thread(candidate.id)
                if (
                    rec is None or rec.status not in WAITING or rec.updated_at != candidate.updated_at
                    or await memory.answered_since_wait(rec.id) or await memory.post_for_key(nudge_key(rec))
                ):
                    continue
                lead = engine.personas.get(rec.lead) or engine.personas[engine.personas.default]
                text = await nudge_text(engine, rec, lead, now)
                await poster.post(Reply(
                    kind=ReplyKind.NOTICE, voice=lead.voice, platform=rec.platform, workspace=rec.workspace,
                    channel=rec.channel, thread=rec.thread, text=text, key=nudge_key(rec), investigation_id=rec.id,
                ), task_id=None, thread=rec)
                sent += 1
        except Exception:
            log.warning("could not nudge %s; trying again on the next run", candidate.id, exc_info=True)
    return sent


async def nudge_text(engine: Engine, rec: ThreadRecord, lead: Persona, now: datetime) -> str:
    """What the lead says: how long it has waited, and for what (the questions she asked, or why
    it paused), then how to move it on."""
    waited = _duration(now - rec.updated_at)
    if rec.status == ThreadStatus.WAITING:
        asks = await _open_questions(engine, rec)
        wanted = ("\n".join(f"• {q}" for q in asks) + "\n") if asks else ""
        return (
            f"{lead.display_name} here: investigation {rec.id} has been waiting on you for {waited}. "
            + (f"I still need your answer to:\n{wanted}" if wanted else "I still need your input to go further.\n")
            + "Reply in this thread when you can (or say “continue” and I'll go on without it)."
        )
    key = await engine.memory.latest_post_key(rec.id) or ""
    if key.startswith("error"):
        why = "its last step failed"
        then = "Say “continue” in this thread to try again."
    else:
        n = engine.config.max_auto_turns
        why = f"we took {n} turn{'s' if n != 1 else ''} in a row without hearing from you"
        then = "Reply in this thread with more evidence, or just “continue”, and we'll pick it up."
    return f"{lead.display_name} here: investigation {rec.id} has been paused for {waited}, since {why}. {then}"


async def _open_questions(engine: Engine, rec: ThreadRecord) -> list[str]:
    """The questions of the latest turn that asked people something (stored with the turn)."""
    for turn in reversed(await engine.memory.turns(rec.id)):
        asks = (turn.route or {}).get("asks")
        if asks:
            return [str(q) for q in asks]
    return []


def _duration(span: timedelta) -> str:
    """'3 days', '5 hours', '12 minutes': the largest unit, rounded down, at least a minute."""
    seconds = max(int(span.total_seconds()), 60)
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "a minute"
