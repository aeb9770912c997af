"""Discord catches up on what was posted while the bot was down (adapters/discord/catch_up.py).

discord.py's real client against the local Discord, the real engine on one SQLite file across
"restarts": each `running(...)` block is one process's life (a new gateway session: IDENTIFY,
READY; nothing replayed to it). Messages posted in between are put in the channels' history with
`create_message(..., dispatch=False)`: stored, never sent on the gateway, as Discord does with
what a bot misses while it has no session. The process-level test (a real `orchestra` killed
with SIGKILL) is in tests/test_discord_crash.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import discord

from adapters.discord.app import DiscordAdapter, client_for
from adapters.discord.catch_up import CatchUp
from adapters.discord.translate import NOT_TAKEN
from bot.settings import load_settings
from engine.engine import Engine, EngineConfig
from engine.memory.records import RecentPlace
from engine.memory.store import SQLiteMemory
from engine.models import Task
from engine.personas import PersonaRegistry
from engine.providers import OfflineProvider
from tests.discord_crash_rig import key_of
from tests.servers import discord_payloads as wire
from tests.servers.discord_api import TOKEN, DiscordServer, connected

pytest_plugins = ["tests.servers.fixtures"]

HISTORY = "GET /channels/{channel_id}/messages"


@dataclass
class Bot:
    server: DiscordServer
    adapter: DiscordAdapter
    engine: Engine

    async def settle(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0.05)
            await self.adapter.listeners.idle()
            await self.engine.wait_idle()

    async def caught_up(self) -> None:
        """Until the catch-up READY started is done (discord.py holds `on_ready` back ~2 s), and
        what it took has been answered."""
        await self.server.wait_for(lambda: self.adapter.catch_up.passes, timeout=15)
        await self.settle()


@contextlib.asynccontextmanager
async def running(server: DiscordServer, db: Path, *, engine_type: type[Engine] = Engine,
                  **settings: Any) -> AsyncIterator[Bot]:
    """One life of the bot on `db`: a new gateway session; stopped (settled first) at the end."""
    memory = await SQLiteMemory.open(db)
    engine = engine_type(memory, OfflineProvider(), PersonaRegistry.defaults(), EngineConfig(max_auto_turns=1))
    adapter = DiscordAdapter(load_settings(
        db=db, discord_token=TOKEN, discord_api_url=server.url, discord_gateway_url=server.gateway_url, **settings,
    ), engine)
    engine.register_outbox("discord", adapter.outbox)
    await adapter.verify()
    try:
        async with connected(adapter.client, server, start=adapter.run):
            bot = Bot(server, adapter, engine)
            yield bot
            await bot.settle()
    finally:
        await adapter.stop()
        await memory.close()


async def first_life(s: DiscordServer, db: Path, text: str, **where: Any) -> dict[str, Any]:
    """A life of the bot in which `text` is mentioned (in #general unless `channel_id=`) and answered."""
    async with running(s, db) as bot:
        message = await s.mention(text, **where)
        await bot.settle()
    return message


def missed(s: DiscordServer, text: str, *, channel_id: int | None = None, author: dict[str, Any] | None = None,
           mention: bool = True, **kw: Any) -> dict[str, Any]:
    """Posted while the bot is down: in the history, never dispatched."""
    content = f"<@{s.bot_id}> {text}" if mention else text
    return s.create_message(channel_id or s.general_id, author or s.alice, {"content": content}, dispatch=False, **kw)


def answers(s: DiscordServer, place: str | int) -> list[str]:
    """The keys of the turns shown in a thread (or DM channel)."""
    return [k for m in s.messages.values() if m["channel_id"] == str(place) and (k := key_of(m) or "").startswith("turn:")]


def tasks(db: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT event_id, json_extract(body, '$.thread') FROM tasks ORDER BY id").fetchall()


def refusals(s: DiscordServer) -> list[dict[str, Any]]:
    return [r.json for r in s.channel_posts() if (r.json or {}).get("message_reference")]


async def test_a_mention_posted_while_down_is_answered_once_after_the_start(discord_server, tmp_path) -> None:
    s, db = discord_server, tmp_path / "orchestra.db"
    first = await first_life(s, db, "sophia why did signups drop last week?")
    answered_first = answers(s, first["id"])
    assert answered_first

    while_down = missed(s, "karen is the pricing page ready?")
    async with running(s, db) as bot:
        await bot.caught_up()
    assert answers(s, while_down["id"])  # its thread was made from it, and she answered there
    assert answers(s, first["id"]) == answered_first  # answered before the restart: not again
    assert [e for e, _ in tasks(db)] == [f"message:{first['id']}", f"message:{while_down['id']}"]

    answered_then = {m: answers(s, m) for m in (first["id"], while_down["id"])}
    async with running(s, db) as bot:  # once more: read again, nothing new
        await bot.caught_up()
    assert {m: answers(s, m) for m in answered_then} == answered_then
    assert len(tasks(db)) == 2


async def test_a_reply_in_a_known_conversation_thread_while_down_continues_it(discord_server, tmp_path) -> None:
    s, db = discord_server, tmp_path / "orchestra.db"
    first = await first_life(s, db, "cherry what should we do first?")
    before = answers(s, first["id"])

    reply = missed(s, "and what about the FAQ?", channel_id=int(first["id"]), mention=False)
    async with running(s, db) as bot:
        await bot.caught_up()
    assert (f"message:{reply['id']}", first["id"]) in tasks(db)
    assert len(answers(s, first["id"])) > len(before)


async def test_a_reply_in_a_known_investigation_thread_while_down_continues_it(discord_server, tmp_path) -> None:
    s, db = discord_server, tmp_path / "orchestra.db"
    async with running(s, db) as bot:
        await s.slash_command("investigate", {"problem": "intermittent 401s on checkout"})
        await bot.settle()
    with sqlite3.connect(db) as con:
        [(thread,)] = con.execute("SELECT thread FROM threads WHERE kind = 'investigation'").fetchall()
    before = answers(s, thread)
    assert before

    reply = missed(s, "the 401s all come from the mobile app", channel_id=int(thread), mention=False)
    async with running(s, db) as bot:
        await bot.caught_up()
    assert (f"message:{reply['id']}", thread) in tasks(db)
    assert len(answers(s, thread)) > len(before)


async def test_a_message_also_arriving_live_during_catch_up_is_answered_once(discord_server, tmp_path) -> None:
    s, db = discord_server, tmp_path / "orchestra.db"
    await first_life(s, db, "sophia what is our churn?")

    late = missed(s, "karen what changed in billing?")
    async with running(s, db) as bot:
        # Discord delivers it to the new session as well (before discord.py's on_ready, so before
        # the catch-up reads it): the two paths meet in the engine's dedupe
        await s.gateway.dispatch("MESSAGE_CREATE", late)
        await bot.caught_up()
    keys = answers(s, late["id"])
    assert keys and len(keys) == len(set(keys))
    assert [e for e, _ in tasks(db)].count(f"message:{late['id']}") == 1
    assert len(s.of("POST /channels/{channel_id}/messages/{message_id}/threads")) == 2  # one thread each


async def test_refused_messages_get_no_second_refusal_and_bots_never_start_turns(discord_server, tmp_path) -> None:
    s, db = discord_server, tmp_path / "orchestra.db"
    allowed = {"allowed_users": [s.alice["id"]]}
    async with running(s, db, **allowed) as bot:
        await s.mention("sophia what is our churn?")
        refused_live = await s.mention("sophia can I ask too?", author=s.bob)
        await bot.settle()
    assert [r["message_reference"]["message_id"] for r in refusals(s)] in ([refused_live["id"]], [int(refused_live["id"])])

    missed(s, "and me, while you were away?", author=s.bob)  # refused: logged, not said
    missed(s, "helperbot asks too", author=s.other_bot)
    hook_id = wire.snowflake()
    hook = s.create_message(s.general_id, wire.user(hook_id, "Some Hook", bot=True),
                            {"content": f"<@{s.bot_id}> from a webhook"}, webhook_id=hook_id, dispatch=False)
    # the last life told alice "nothing was started, try again" (its database was away): she was
    # answered, and may have asked again; the restart does not start it behind her back
    told = missed(s, "sophia is the export fixed?")
    s.create_message(s.general_id, s.bot, {"content": NOT_TAKEN, "message_reference": {"message_id": told["id"]}},
                     dispatch=False)
    async with running(s, db, **allowed) as bot:
        await bot.caught_up()
    assert len(refusals(s)) == 1  # the live one, nothing more
    assert len(tasks(db)) == 1
    assert not answers(s, hook["id"]) and not answers(s, told["id"])


async def test_older_than_the_window_is_not_read_and_zero_reads_nothing(discord_server, tmp_path) -> None:
    s, db = discord_server, tmp_path / "orchestra.db"
    async with running(s, db) as bot:
        # a command, not a message: the channel is known, nothing in it is stored as read
        await s.slash_command("investigate", {"problem": "why do exports time out?"}, channel_id=s.random_id)
        await bot.settle()

    two_hours_ago = discord.utils.time_snowflake(discord.utils.utcnow() - timedelta(hours=2))
    old = missed(s, "sophia, from long ago", channel_id=s.random_id, extra={"id": str(two_hours_ago)})
    recent = missed(s, "sophia, from a minute ago", channel_id=s.random_id)
    async with running(s, db, discord_catch_up="0") as bot:
        await s.wait_for(lambda: bot.adapter.client.is_ready(), timeout=15)
        await asyncio.sleep(0.3)
        assert not s.of(HISTORY) and bot.adapter.catch_up.passes == 0
    assert len(tasks(db)) == 1

    async with running(s, db) as bot:
        await bot.caught_up()
    event_ids = [e for e, _ in tasks(db)]
    assert f"message:{recent['id']}" in event_ids and f"message:{old['id']}" not in event_ids
    assert answers(s, recent["id"]) and not answers(s, old["id"])


async def test_places_refusing_or_gone_are_logged_and_the_others_are_still_caught_up(
        discord_server, tmp_path, caplog) -> None:
    s, db = discord_server, tmp_path / "orchestra.db"
    async with running(s, db) as bot:
        here = await s.mention("sophia what is our churn?")
        there = await s.mention("karen is the pricing page ready?", channel_id=s.random_id)
        await bot.settle()

    in_thread = missed(s, "and last month?", channel_id=int(here["id"]), mention=False)
    in_random = missed(s, "cherry what next?", channel_id=s.random_id)
    s.fail(f"GET /channels/{here['id']}/messages", 403, 50001, "Missing Access", times=None)
    del s.channels[int(there["id"])]  # someone deleted karen's thread: 404 Unknown Channel
    with caplog.at_level(logging.INFO, logger="adapters.discord.catch_up"):
        async with running(s, db) as bot:
            await bot.caught_up()
    event_ids = [e for e, _ in tasks(db)]
    assert f"message:{in_random['id']}" in event_ids and answers(s, in_random["id"])
    assert f"message:{in_thread['id']}" not in event_ids
    assert f"cannot catch up in thread {here['id']}" in caplog.text and "View Channel" in caplog.text
    assert f"nothing to catch up in thread {there['id']} of channel {s.random_id}" in caplog.text
    assert "caught up on 4 place(s)" in caplog.text  # both channels, both threads: none of it stopped the rest


async def test_a_rate_limited_history_read_is_retried_and_still_caught_up(discord_server, tmp_path) -> None:
    """A 429 on a history read is discord.py's to wait out (Retry-After) and retry: the message is
    still answered."""
    s, db = discord_server, tmp_path / "orchestra.db"
    await first_life(s, db, "sophia what is our churn?")

    while_down = missed(s, "karen is the pricing page ready?")
    s.rate_limit(f"GET /channels/{s.general_id}/messages", times=1, retry_after=0.2)
    async with running(s, db) as bot:
        await bot.caught_up()
    reads = s.of(f"GET /channels/{s.general_id}/messages", ok_only=False)
    assert [r.status for r in reads][:2] == [429, 200]
    assert answers(s, while_down["id"])


class MemoryAway(Engine):
    """The memory does not answer the catch-up's question (a locked SQLite file, a PostgreSQL
    server restarting); everything else works."""

    async def recent_places(self, platform: str, since: Any, *, limit: int = 1000) -> list[RecentPlace]:
        raise sqlite3.OperationalError("database is locked")


async def test_a_memory_that_does_not_answer_is_logged_and_live_messages_are_still_answered(
        discord_server, tmp_path, caplog) -> None:
    s, db = discord_server, tmp_path / "orchestra.db"
    await first_life(s, db, "sophia what is our churn?")

    while_down = missed(s, "karen is the pricing page ready?")
    with caplog.at_level(logging.INFO, logger="adapters.discord.catch_up"):
        async with running(s, db, engine_type=MemoryAway) as bot:
            await bot.caught_up()
            live = await s.mention("cherry what should we do first?", channel_id=s.random_id)
            await bot.settle()
    assert "could not catch up on messages posted while the bot was down: the memory did not answer" in caplog.text
    said = [r for r in caplog.records if r.name == "adapters.discord.catch_up" and r.levelno >= logging.WARNING]
    assert [r.exc_info for r in said] == [None]  # a transient error: one line, no stack
    assert answers(s, live["id"])  # the adapter went on
    assert not answers(s, while_down["id"])

    async with running(s, db) as bot:  # the next start reads it
        await bot.caught_up()
    assert answers(s, while_down["id"])


async def test_a_channel_without_read_message_history_is_named_and_the_others_are_still_caught_up(
        discord_server, tmp_path, caplog) -> None:
    """Without Read Message History Discord answers a history read with no messages, not an error:
    the bot checks its permission first and says which one is missing."""
    s, db = discord_server, tmp_path / "orchestra.db"
    async with running(s, db) as bot:
        await s.mention("sophia what is our churn?")
        await s.mention("karen is the pricing page ready?", channel_id=s.random_id)
        await bot.settle()

    in_general = missed(s, "cherry what next?")
    in_random = missed(s, "sophia and the other page?", channel_id=s.random_id)
    s.deny_read_history(s.random_id)
    with caplog.at_level(logging.INFO, logger="adapters.discord.catch_up"):
        async with running(s, db) as bot:
            await bot.caught_up()
    event_ids = [e for e, _ in tasks(db)]
    assert f"message:{in_general['id']}" in event_ids and answers(s, in_general["id"])
    assert f"message:{in_random['id']}" not in event_ids
    assert f"cannot catch up in channel {s.random_id} (server {s.guild_id}): give the bot Read Message History" \
        in caplog.text


async def test_a_dm_posted_while_down_is_answered_and_other_servers_places_are_not_read(discord_server, tmp_path) -> None:
    """A DM channel the bot was talking in is read again (DMs reach an unsharded client); a place
    in a server this client is not in (another replica's shard, a server that removed the bot)
    is not asked about at all."""
    s, db = discord_server, tmp_path / "orchestra.db"
    async with running(s, db) as bot:
        first = await s.dm("sophia what is a cohort?")
        await bot.settle()
    dm_channel = first["channel_id"]
    before = answers(s, dm_channel)
    assert before

    memory = await SQLiteMemory.open(db)  # work another replica took, in a server not ours
    try:
        await memory.accept_task(Task(platform="discord", workspace="424242", channel="515151", thread="515152",
                                      user="1", text="hi", event_id="message:515152", message_id="515152"))
    finally:
        await memory.close()
    later = s.create_message(int(dm_channel), s.alice, {"content": "and a retention curve?"}, dispatch=False)
    async with running(s, db) as bot:
        await bot.caught_up()
    assert f"message:{later['id']}" in [e for e, _ in tasks(db)]
    assert len(answers(s, dm_channel)) > len(before)
    assert not [r for r in s.requests if "515151" in r.path or "515152" in r.path]


def test_dms_are_caught_up_by_the_replica_that_runs_shard_0_only(tmp_path) -> None:
    """Discord sends DMs to shard 0: the replica running it reads DM channels again, the others not."""
    dm = RecentPlace(workspace="dm", channel="5", thread="5", last_active=discord.utils.utcnow())
    for shards, sees in (("0", True), ("1", False), ("0,1", True)):
        client = client_for(load_settings(db=tmp_path / "o.db", discord_token=TOKEN, discord_shard_ids=shards,
                                          discord_shard_count=2))
        assert CatchUp(client, None, None, timedelta(hours=1)).visible(dm) is sees  # type: ignore[arg-type]
    assert CatchUp(client_for(load_settings(db=tmp_path / "o.db", discord_token=TOKEN)), None, None,  # type: ignore[arg-type]
                   timedelta(hours=1)).visible(dm)


async def test_a_resumed_session_is_not_caught_up_but_an_invalidated_one_is(discord_server, tmp_path) -> None:
    """A RESUME has the missed events replayed: nothing is read. A session Discord no longer
    knows makes discord.py IDENTIFY again: a READY, and the history is read as after a start."""
    s, db = discord_server, tmp_path / "orchestra.db"
    async with running(s, db) as bot:
        await s.mention("sophia what is our churn?")
        await bot.caught_up()
        reads = len(s.of(HISTORY))

        await s.gateway.drop()  # resumable: discord.py RESUMEs and gets what it missed replayed
        await s.wait_for(lambda: s.gateway.resumes and s.gateway.ws is not None and not s.gateway.ws.closed)
        await asyncio.sleep(2.5)  # longer than discord.py holds on_ready back after a READY
        assert bot.adapter.catch_up.passes == 1 and len(s.of(HISTORY)) == reads

        s.gateway.session.session_id = "expired"  # the next RESUME is refused: INVALID_SESSION
        while_invalid = missed(s, "karen is the pricing page ready?")
        await s.gateway.drop()
        await s.wait_for(lambda: bot.adapter.catch_up.passes == 2, timeout=15)
        await bot.settle()
    assert len(s.gateway.identifies) == 2
    assert answers(s, while_invalid["id"])


async def test_the_most_recent_places_and_the_oldest_messages_first_within_the_caps(discord_server, tmp_path,
                                                                                    caplog) -> None:
    """Bounded work after a long outage: the most recently active places only, and a bounded
    count per place, oldest first; the log says what was left."""
    s, db = discord_server, tmp_path / "orchestra.db"
    async with running(s, db) as bot:
        await s.mention("sophia what is our churn?", channel_id=s.random_id)
        await bot.settle()
        await s.mention("karen is the pricing page ready?")  # the most recent place: #general
        await bot.settle()

    in_general = [missed(s, f"cherry question {n}?") for n in range(3)]
    in_random = missed(s, "sophia and last month?", channel_id=s.random_id)
    with caplog.at_level(logging.INFO, logger="adapters.discord.catch_up"):
        async with running(s, db) as bot:
            bot.adapter.catch_up.places, bot.adapter.catch_up.per_place = 2, 2  # before discord.py's on_ready
            await bot.caught_up()
    event_ids = [e for e, _ in tasks(db)]
    assert [m["id"] for m in in_general if f"message:{m['id']}" in event_ids] == [m["id"] for m in in_general[:2]]
    assert f"message:{in_random['id']}" not in event_ids  # #random's places are older: skipped
    assert "catching up on the 2 most recently active places; 2 older one(s) skipped" in caplog.text
    assert f"more than 2 messages were posted in channel {s.general_id}" in caplog.text
