"""The daily digest: per channel, the investigations still open there (active, waiting for people,
paused), each with what adapters need to link its thread.

One channel's digest lists that channel's investigations only (never another channel's or
workspace's). It is a channel post (thread None) of kind NOTICE whose `content` is
`{"digest": [item, ...]}`, each item naming the investigation's readable id, title, status, lead
and platform thread (`thread`), so Slack and Discord can link it; its text is the plain
rendering (the terminal, notifications). Key `digest:<platform>:<channel>:<local date>`: once a
day per channel, even across restarts. Nothing open, nothing posted.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, tzinfo
from typing import TYPE_CHECKING

from engine.memory.records import ThreadRecord, ThreadStatus
from engine.models import Reply, ReplyKind

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger(__name__)

STATUS_WORDS = {
    ThreadStatus.ACTIVE: "in progress",
    ThreadStatus.WAITING: "waiting for your answer",
    ThreadStatus.PAUSED: "paused",
}


def digest_key(platform: str, channel: str, day: date) -> str:
    return f"digest:{platform}:{channel}:{day.isoformat()}"


async def send_digests(
    engine, now: datetime, channels: list[tuple[str, str | None, str]], *, tz: tzinfo | None = None
) -> int:
    """Post each channel's digest; how many were posted.

    `channels`: (platform, workspace, channel); workspace None matches the channel in whichever
    workspace holds it (a setting such as `slack:C123` names no workspace). The day in the key is
    `now`'s date in `tz` (default: `now`'s own zone), the digest's local date. Channels of a
    platform not running now, or with nothing open, are skipped; a failure is logged and the
    other channels still get theirs.
    """
    sent = 0
    for platform, workspace, channel in channels:
        if platform not in engine.poster.outboxes:
            continue
        try:
            open_work = await engine.memory.open_investigations(platform, workspace, channel)
            if not open_work:
                continue
            key = digest_key(platform, channel, (now.astimezone(tz) if tz else now).date())
            if await engine.memory.post_for_key(key):
                continue
            await engine.poster.post(_digest(engine, open_work, key), task_id=None, thread=None)
            sent += 1
        except Exception:
            log.warning("could not post the digest to %s:%s", platform, channel, exc_info=True)
    return sent


def digest_item(engine: Engine, rec: ThreadRecord) -> dict:
    lead = engine.personas.get(rec.lead)
    return {
        "id": rec.id, "title": rec.title, "status": rec.status.value, "phase": rec.phase.value,
        "lead": lead.display_name if lead else (rec.lead or ""), "thread": rec.thread, "turns": rec.turn_count,
        "updated_at": rec.updated_at.isoformat(),
    }


def _digest(engine: Engine, open_work: list[ThreadRecord], key: str) -> Reply:
    speaker = engine.personas[engine.personas.default]
    items = [digest_item(engine, rec) for rec in open_work]
    n = len(items)
    lines = [f"{speaker.display_name} here: {n} investigation{'s are' if n != 1 else ' is'} open in this channel."]
    for item, rec in zip(items, open_work):
        lines.append(f"• {item['id']} · {STATUS_WORDS.get(rec.status, rec.status.value)} · {item['lead']} · {rec.title}")
    lines.append("Reply in an investigation's thread to move it on.")
    first = open_work[0]
    return Reply(
        kind=ReplyKind.NOTICE, voice=speaker.voice, platform=first.platform, workspace=first.workspace,
        channel=first.channel, thread=None, text="\n".join(lines), key=key, content={"digest": items},
        title="Open investigations",
    )
