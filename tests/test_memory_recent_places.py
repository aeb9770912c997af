"""`Memory.recent_places`, on both backends (`memory_db`: a SQLite file, a PostgreSQL database):
where work arrived lately on a platform, which the Discord adapter reads again after a restart
(adapters/discord/catch_up.py). Its end-to-end tests are in tests/test_discord_catch_up.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from engine.memory.open import open_memory
from engine.memory.records import ThreadKind, ThreadRecord
from engine.models import Task, TaskKind
from tests.memory_backends import memory_db, pg_server  # noqa: F401 - fixtures


def message(channel: str, message_id: str, *, thread: str | None = None, workspace: str = "G1",
            platform: str = "discord") -> Task:
    """A person's message: a top-level one opens its own thread (`thread` = its own id)."""
    return Task(platform=platform, workspace=workspace, channel=channel, thread=thread or message_id, user="U1",
                text="hello", event_id=f"message:{message_id}", kind=TaskKind.MESSAGE, message_id=message_id)


def investigation(channel: str, thread: str, at: datetime) -> ThreadRecord:
    return ThreadRecord(id=f"inv-{thread}", kind=ThreadKind.INVESTIGATION, platform="discord", workspace="G1",
                        channel=channel, thread=thread, title="why", created_at=at, updated_at=at)


async def test_recent_places_are_the_channels_and_threads_with_work_since_then_newest_first(memory_db) -> None:
    memory = await open_memory(memory_db)
    try:
        await memory.accept_task(message("C9", "50"))  # before the window
        await memory.create_thread(investigation("C9", "60", datetime.now(UTC) - timedelta(hours=2)))
        await asyncio.sleep(0.01)
        since = datetime.now(UTC)
        await asyncio.sleep(0.01)
        await memory.accept_task(message("C1", "100"))  # a mention: the channel, and the thread it opens
        await memory.accept_task(message("C1", "105", thread="100"))  # a reply in that thread
        await memory.accept_task(message("C1", "103", thread="100"))  # stored last (not the highest id)
        await memory.accept_task(Task(platform="discord", workspace="G1", channel="C2", user="U1", text="why?",
                                      event_id="interaction:7", kind=TaskKind.INVESTIGATE))
        await memory.create_thread(investigation("C2", "200", datetime.now(UTC)))  # the command's thread
        await memory.accept_task(message("D1", "110", thread="D1", workspace="dm"))  # a DM: its channel is its thread
        await memory.accept_task(message("C1", "120", platform="slack"))  # another platform

        places = await memory.recent_places("discord", since)
        found = [(p.workspace, p.channel, p.thread, p.last_message_event) for p in places]
        assert found == [
            ("dm", "D1", "D1", "message:110"),
            ("G1", "C2", "200", None),
            ("G1", "C2", None, None),
            ("G1", "C1", "100", "message:103"),
            ("G1", "C1", None, "message:100"),
        ]
        assert all(p.last_active >= since for p in places)
        assert [p.thread for p in await memory.recent_places("discord", since, limit=2)] == ["D1", "200"]
        assert await memory.recent_places("discord", datetime.now(UTC) + timedelta(minutes=1)) == []
        assert [p.channel for p in await memory.recent_places("discord", since - timedelta(days=1))].count("C9") == 3  # its top level, the thread 50 opened, thread 60
    finally:
        await memory.close()
